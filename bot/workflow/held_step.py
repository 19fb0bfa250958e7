"""A step a kind holds for a second confirmation after the verdict (a secret rollback's
"Disable version 7"): offered in the thread when the change succeeds, run when an
approver other than the requester clicks it, once (under the change's lock).

The verdict never waits for it; until it is done the summary says what still waits.
"""

from __future__ import annotations

import logging
from functools import partial

from bot import authz
from bot.changes.kind import FinalStep, held_step
from bot.changes.model import Change, State
from bot.changes.registry import kind_named
from bot.checks import CheckKind, CheckResult
from bot.deps import Deps, group_members
from bot.inbound import ButtonClick
from bot.messages import refusals
from bot.messages.base import ephemeral_error
from bot.messages.held_step import held_step_done, held_step_failed, held_step_offer
from bot.workflow.posting import ChangeView, in_thread
from bot.workflow.rollout_moves import locked
from bot.workflow.rules import rules_of_change
from integrations.google_retry import GoogleCallError

log = logging.getLogger(__name__)


def waiting(change: Change) -> FinalStep | None:
    """The change's held step, if it succeeded and the step is not done yet."""
    held = held_step(kind_named(change.kind))
    step = held.final_step(change) if held is not None else None
    if step is None or step.done or change.state != State.SUCCEEDED:
        return None
    return step


def stage(change: Change) -> str:
    step = waiting(change)
    return "Done" if step is None else f"Done · ⏸ {step.pending}"


async def offer(deps: Deps, change: Change) -> None:
    step = waiting(change)
    if step is not None:
        await in_thread(deps, change, held_step_offer(change, step))


async def _checks(deps: Deps, change: Change) -> list[CheckResult]:
    """The verification's results as audited (the summary keeps showing them)."""
    events = [e for e in await deps.audit.for_change(change.id) if e.action == "verified"]
    checks = events[-1].details.get("checks", []) if events else []
    return [CheckResult(name=str(c["name"]), url="", ok=bool(c["ok"]), status=None,
                        detail=str(c.get("detail", "")), elapsed_ms=0.0,
                        kind=CheckKind.CLOUD_RUN if c["name"] == "serving" else CheckKind.HTTP)
            for c in checks]


async def _allowed(deps: Deps, click: ButtonClick, change: Change) -> bool:
    rules = rules_of_change(deps.catalog, change)
    if rules is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            f"`{change.service}` is no longer in the catalog.", "Nothing was changed."))
        return False
    for name, service in rules:
        decision = await authz.may_confirm(service, click.user_id, change.requested_by,
                                           partial(group_members, deps))
        if not decision.allowed:
            await deps.audit.record(actor=click.user_id, action="final_step",
                                    service=change.service, change_id=change.id,
                                    outcome="denied", details={"reason": decision.reason})
            await deps.slack.respond(click.response_url, refusals.needs_second_person()
                                     if decision.code == "second_person"
                                     else refusals.not_an_approver(name,
                                                                   list(service.approvers)))
            return False
    return True


async def run(deps: Deps, click: ButtonClick, change_id: int | None) -> None:
    """The held step's button: Confirm's rules, then the step, once."""
    change = await deps.changes.get(change_id) if change_id is not None else None
    if change is None or waiting(change) is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "Nothing waits for a second confirmation here: it was done already, or the "
            "change did not succeed.", "Nothing was changed."))
        return
    if not await _allowed(deps, click, change):
        return
    async with locked(deps, change.id) as conn:
        current = await deps.changes.get(change.id, conn=conn)
        step = waiting(current) if current is not None else None
        if current is None or step is None:
            await deps.slack.respond(click.response_url, ephemeral_error(
                "Someone else confirmed it first.", "Nothing more was changed."))
            return
        held = held_step(kind_named(current.kind))
        assert held is not None
        try:
            after = await held.run_final_step(deps, current, click.user_id)
        except GoogleCallError as exc:
            await in_thread(deps, current, held_step_failed(step, exc.message))
            return
        done = await deps.changes.set_fields(current.id, conn=conn, after=after)
    assert done is not None
    await in_thread(deps, done, held_step_done(step, click.user_id))
    async with ChangeView(deps, done) as view:
        view.summary(done, stage(done), await _checks(deps, done))
        view.card(done)
