"""Step 2: a teammate's Confirm (or anyone entitled's Cancel) on the plan card.

The state change and its audit event are written in one transaction, so a double
click, a second replica or a Slack retry finds the row already moved. After a
Confirm commits, the same job goes straight on into the change and the verification
(no hand-off through the queue on the way to the outside system). While it runs, the
job (its `change_id` argument) counts as the change's job for recovery; if it dies,
recovery resumes the change (bot/workflow/recovery.py).
"""

from __future__ import annotations

import logging
from functools import partial

from bot import authz
from bot.changes.kind import Prefetch
from bot.changes.model import Change, State
from bot.changes.registry import UnknownKind, kind_named
from bot.deps import Deps, group_members
from bot.ids import kind_and_subject_of_plan_actions
from bot.inbound import ButtonClick
from bot.messages import refusals
from bot.messages.base import ephemeral_error
from bot.metrics import record_rollback_outcome
from bot.plans import Plan
from bot.workflow import execute, recovery
from bot.workflow.posting import ChangeView, refresh_card
from bot.workflow.rules import rules_of_change

log = logging.getLogger(__name__)


async def _load(deps: Deps, click: ButtonClick, change_id: int | None) -> Change | None:
    change = await deps.changes.get(change_id) if change_id is not None else None
    if change is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "That plan card is out of date: rollbot has no such change.",
            "Start again with `/rollback <service> <revision>`."))
    return change


async def _deny(deps: Deps, click: ButtonClick, change: Change, action: str,
                decision: authz.Decision, label: str, rules: authz.Rules) -> None:
    await deps.audit.record(actor=click.user_id, action=action, service=change.service,
                            change_id=change.id, outcome="denied",
                            details={"reason": decision.reason})
    if decision.code == "second_person":
        message = refusals.needs_second_person()
    elif action == "cancel":
        message = refusals.cannot_cancel(label, change.requested_by, list(rules.approvers))
    else:
        message = refusals.not_an_approver(label, list(rules.approvers))
    await deps.slack.respond(click.response_url, message)


def _prefetch(deps: Deps, click: ButtonClick) -> Prefetch | None:
    """The kind's first read of the subject the card's buttons name, started before
    the change is loaded: it is the first wait of the change (the kind drops it if the
    change turns out to be of another subject)."""
    named = kind_and_subject_of_plan_actions(click.block_id)
    if named is None:
        return None
    kind_name, subject = named
    try:
        kind = kind_named(kind_name)
    except UnknownKind:
        return None
    return kind.prefetch(deps, subject)


async def confirm(deps: Deps, click: ButtonClick, change_id: int | None, *,
                  job_id: int | None = None, retried: bool = False,
                  run_as: str | None = None) -> None:
    """`retried`: this job ran before, on a worker that died (recovery re-queued it).
    `run_as`: the kind the click confirms it as (a button the plan offers, e.g. Gradual);
    None: the plan's own kind."""
    prefetch = _prefetch(deps, click) if not retried else None
    try:
        change = await _load(deps, click, change_id)
        if change is None:
            return
        if (retried and change.state != State.PROPOSED
                and change.confirmed_by == click.user_id):
            # Most likely this click's own first attempt confirmed it before dying: no
            # "already handled" to the clicker; carry it on unless another job does.
            await recovery.resume_inline(deps, change, job_id=job_id)
            return
        if change.state != State.PROPOSED or rules_of_change(deps.catalog, change) is None:
            await _decide(deps, click, change, confirm=True)  # tells the clicker why not
            return
        # Straight on to the change, in this job: the kind's first read runs while the
        # click is authorized and committed. Recovery counts this job as the change's
        # while it is queued or running, so no second execute is deferred.
        async with ChangeView(deps, change) as view:
            await execute.run_change(
                deps, change, view, prefetch=prefetch,
                confirm=partial(_decide, deps, click, change, confirm=True, run_as=run_as))
    finally:
        if prefetch is not None:
            prefetch.cancel()  # unused (refused, lost, another subject); no-op once read


async def cancel(deps: Deps, click: ButtonClick, change_id: int | None) -> None:
    change = await _load(deps, click, change_id)
    if change is None:
        return
    decided = await _decide(deps, click, change, confirm=False)
    if decided is not None:
        record_rollback_outcome(decided.state.value)
        await refresh_card(deps, decided, final_note="Nothing was changed.")


def _confirmed_as(change: Change, run_as: str | None) -> str | None:
    """The kind a Confirm makes the change: the plan's own, or one it offers."""
    plan = Plan.from_json(change.plan)
    if run_as is None or run_as == plan.kind:
        return plan.kind
    return run_as if run_as in plan.alternatives else None


async def _decide(deps: Deps, click: ButtonClick, change: Change, *,
                  confirm: bool, run_as: str | None = None) -> Change | None:
    """Authorize and move `proposed` on; the moved row, or None (the user was told)."""
    action = "confirm" if confirm else "cancel"
    if change.state != State.PROPOSED:
        await deps.slack.respond(click.response_url, refusals.already_handled(change))
        return None
    kind = _confirmed_as(change, run_as) if confirm else change.kind
    if kind is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "This plan does not offer that way of running it.",
            "Use the plan card's Confirm button. Nothing was changed."))
        return None
    rules = rules_of_change(deps.catalog, change)
    if rules is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            f"`{change.service or change.subject}` is no longer in the catalog.",
            "Nothing was changed."))
        return None
    plan = Plan.from_json(change.plan)
    if confirm and plan.blocked:
        await deps.audit.record(actor=click.user_id, action="confirm", service=change.service,
                                change_id=change.id, outcome="denied",
                                details={"reason": "blocked",
                                         "blockers": [b.text for b in plan.blockers]})
        await deps.slack.respond(click.response_url, refusals.blocked(plan))
        return None
    authorize = authz.may_confirm if confirm else authz.may_cancel
    for label, each in rules:
        decision = await authorize(each, click.user_id, change.requested_by,
                                   partial(group_members, deps))
        if not decision.allowed:
            await _deny(deps, click, change, action, decision, label, each)
            return None
    new_state, by = ((State.CONFIRMED, {"confirmed_by": click.user_id, "kind": kind})
                     if confirm else (State.CANCELLED, {"cancelled_by": click.user_id}))
    async with deps.pool.connection() as conn, conn.transaction():
        decided = await deps.changes.transition(
            change.id, State.PROPOSED, new_state, conn=conn, **by)
        if decided is not None:
            await deps.audit.record(
                conn=conn, actor=click.user_id, action=action, service=change.service,
                change_id=change.id, details={"kind": kind})
    if decided is None:  # someone else's click got there first
        current = await deps.changes.get(change.id)
        await deps.slack.respond(click.response_url, refusals.already_handled(current or change))
    return decided
