"""Step 2: a teammate's Confirm (or anyone entitled's Cancel) on the plan card.

The state change and its audit event are written in one transaction, so a double
click, a second replica or a Slack retry finds the row already moved. After a
Confirm commits, the same job goes straight on into the traffic change and the
verification (no hand-off through the queue on the way to Cloud Run). While it
runs, the job (its click names the rollback) counts as the rollback's job for
recovery; if it dies, recovery resumes the rollback (bot/workflow/recovery.py).
"""

from __future__ import annotations

import logging
from functools import partial

from bot import authz
from bot.deps import Deps, group_members
from bot.ids import service_of_plan_actions
from bot.inbound import ButtonClick
from bot.messages import refusals
from bot.messages.base import ephemeral_error
from bot.metrics import record_rollback_outcome
from bot.rollbacks.model import Rollback, State
from bot.workflow import execute, recovery
from bot.workflow.posting import RollbackView, refresh_card
from integrations.cloud_run import PendingRead

log = logging.getLogger(__name__)


def rollback_id_of(click: ButtonClick) -> int | None:
    """The rollback a Confirm/Cancel button names. Only the canonical form
    (str(id)) is accepted: recovery matches a confirm job to its rollback by that
    text, so "07" or " 7" must not reach a rollback recovery cannot see it carry."""
    value = click.value
    if not (value.isascii() and value.isdigit()) or value.startswith("0") or len(value) > 18:
        return None
    return int(value)


async def _load(deps: Deps, click: ButtonClick) -> Rollback | None:
    rollback_id = rollback_id_of(click)
    rollback = await deps.rollbacks.get(rollback_id) if rollback_id is not None else None
    if rollback is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "That plan card is out of date: rollbot has no such rollback.",
            "Start again with `/rollback <service> <revision>`."))
    return rollback


async def _deny(deps: Deps, click: ButtonClick, rollback: Rollback, action: str,
                decision: authz.Decision) -> None:
    await deps.audit.record(actor=click.user_id, action=action, service=rollback.service,
                            rollback_id=rollback.id, outcome="denied",
                            details={"reason": decision.reason})
    service = deps.catalog.services[rollback.service]
    if decision.code == "second_person":
        message = refusals.needs_second_person()
    elif action == "cancel":
        message = refusals.cannot_cancel(rollback.service, rollback.requested_by,
                                         list(service.approvers))
    else:
        message = refusals.not_an_approver(rollback.service, list(service.approvers))
    await deps.slack.respond(click.response_url, message)


def _start_read(deps: Deps, click: ButtonClick) -> PendingRead | None:
    """Cloud Run's read of the service the card's buttons name, started before the
    rollback is loaded: it is the first wait of the change (set_traffic drops it if
    the rollback turns out to be of another service)."""
    key = service_of_plan_actions(click.block_id) or ""
    service = deps.catalog.services.get(key)
    if service is None:
        return None
    return deps.cloud_run.start_read(service.cloud_run_service, deps.catalog.region_of(key))


async def confirm(deps: Deps, click: ButtonClick, *, job_id: int | None = None,
                  retried: bool = False) -> None:
    """`retried`: this job ran before, on a worker that died (recovery re-queued it)."""
    read = _start_read(deps, click) if not retried else None
    try:
        rollback = await _load(deps, click)
        if rollback is None:
            return
        if (retried and rollback.state != State.PROPOSED
                and rollback.confirmed_by == click.user_id):
            # Most likely this click's own first attempt confirmed it before dying: no
            # "already handled" to the clicker; carry it on unless another job does.
            await recovery.resume_inline(deps, rollback, job_id=job_id)
            return
        if rollback.state != State.PROPOSED or rollback.service not in deps.catalog.services:
            await _decide(deps, click, rollback, confirm=True)  # tells the clicker why not
            return
        # Straight on to the change, in this job: Cloud Run's service is read while the
        # click is authorized and committed. Recovery counts this job as the rollback's
        # while it is queued or running, so no second execute is deferred.
        async with RollbackView(deps, rollback) as view:
            await execute.shift_traffic(
                deps, rollback, view, read=read,
                confirm=partial(_decide, deps, click, rollback, confirm=True))
    finally:
        if read is not None:
            read.cancel()  # unused (refused, lost, another service); no-op once read


async def cancel(deps: Deps, click: ButtonClick) -> None:
    rollback = await _load(deps, click)
    if rollback is None:
        return
    decided = await _decide(deps, click, rollback, confirm=False)
    if decided is not None:
        record_rollback_outcome(decided.state.value)
        await refresh_card(deps, decided, final_note="Nothing was changed in Cloud Run.")


async def _decide(deps: Deps, click: ButtonClick, rollback: Rollback, *,
                  confirm: bool) -> Rollback | None:
    """Authorize and move `proposed` on; the moved row, or None (the user was told)."""
    action = "confirm" if confirm else "cancel"
    if rollback.state != State.PROPOSED:
        await deps.slack.respond(click.response_url, refusals.already_handled(rollback))
        return None
    service = deps.catalog.services.get(rollback.service)
    if service is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            f"Service `{rollback.service}` is no longer in the catalog.", "Nothing was changed."))
        return None
    authorize = authz.may_confirm if confirm else authz.may_cancel
    decision = await authorize(service, click.user_id, rollback.requested_by,
                               partial(group_members, deps))
    if not decision.allowed:
        await _deny(deps, click, rollback, action, decision)
        return None
    new_state, by = ((State.CONFIRMED, {"confirmed_by": click.user_id}) if confirm
                     else (State.CANCELLED, {"cancelled_by": click.user_id}))
    async with deps.pool.connection() as conn, conn.transaction():
        decided = await deps.rollbacks.transition(
            rollback.id, State.PROPOSED, new_state, conn=conn, **by)
        if decided is not None:
            await deps.audit.record(
                conn=conn, actor=click.user_id, action=action, service=rollback.service,
                rollback_id=rollback.id, details={"target": rollback.target_revision})
    if decided is None:  # someone else's click got there first
        current = await deps.rollbacks.get(rollback.id)
        await deps.slack.respond(click.response_url, refusals.already_handled(current or rollback))
    return decided
