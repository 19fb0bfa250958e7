"""Step 2: a teammate's Confirm (or anyone entitled's Cancel) on the plan card.

The state change, its audit event and the next job are written in one
transaction: a confirmed rollback always has an execute job, and a double
click, a second replica or a Slack retry finds the row already moved.
"""

from __future__ import annotations

import logging
from functools import partial

from bot import authz
from bot.deps import Deps, group_members
from bot.inbound import ButtonClick
from bot.jobs_names import EXECUTE
from bot.messages import refusals
from bot.messages.base import ephemeral_error
from bot.metrics import record_rollback_outcome
from bot.rollbacks.model import Rollback, State
from bot.workflow.posting import refresh_card

log = logging.getLogger(__name__)


async def _load(deps: Deps, click: ButtonClick) -> Rollback | None:
    try:
        rollback_id = int(click.value)
    except ValueError:
        rollback_id = -1
    rollback = await deps.rollbacks.get(rollback_id) if rollback_id > 0 else None
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


async def confirm(deps: Deps, click: ButtonClick) -> None:
    await _decide(deps, click, confirm=True)


async def cancel(deps: Deps, click: ButtonClick) -> None:
    await _decide(deps, click, confirm=False)


async def _decide(deps: Deps, click: ButtonClick, *, confirm: bool) -> None:
    action = "confirm" if confirm else "cancel"
    rollback = await _load(deps, click)
    if rollback is None:
        return
    if rollback.state != State.PROPOSED:
        await deps.slack.respond(click.response_url, refusals.already_handled(rollback))
        return
    service = deps.catalog.services.get(rollback.service)
    if service is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            f"Service `{rollback.service}` is no longer in the catalog.", "Nothing was changed."))
        return
    authorize = authz.may_confirm if confirm else authz.may_cancel
    decision = await authorize(service, click.user_id, rollback.requested_by,
                               partial(group_members, deps))
    if not decision.allowed:
        await _deny(deps, click, rollback, action, decision)
        return
    new_state, by = ((State.CONFIRMED, {"confirmed_by": click.user_id}) if confirm
                     else (State.CANCELLED, {"cancelled_by": click.user_id}))
    async with deps.pool.connection() as conn, conn.transaction():
        decided = await deps.rollbacks.transition(
            rollback.id, State.PROPOSED, new_state, conn=conn, **by)
        if decided is not None:
            await deps.audit.record(
                conn=conn, actor=click.user_id, action=action, service=rollback.service,
                rollback_id=rollback.id, details={"target": rollback.target_revision})
            if confirm:
                await deps.jobs.configure_task(EXECUTE, connection=conn).defer_async(
                    rollback_id=rollback.id)
    if decided is None:  # someone else's click got there first
        current = await deps.rollbacks.get(rollback.id)
        await deps.slack.respond(click.response_url, refusals.already_handled(current or rollback))
        return
    if not confirm:
        record_rollback_outcome(decided.state.value)
    await refresh_card(deps, decided,
                       final_note=None if confirm else "Nothing was changed in Cloud Run.")
