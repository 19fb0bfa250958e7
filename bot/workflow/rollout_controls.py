"""A running rollout's buttons: Promote now, Abort, Pause, Resume.

Promote now and Resume go further, so they take Confirm's approval rules (an
approver, not the requester where a second person is required). Abort and Pause make
things safer: any requester or approver may press them. Every press is audited,
refused ones too; each runs under the rollout's lock, so a press and a scheduled
analysis never move the rollout at once.
"""

from __future__ import annotations

import logging
from functools import partial

from bot import authz
from bot.catalog import ServiceSection
from bot.changes.model import Change
from bot.deps import Deps, group_members
from bot.ids import RolloutAction
from bot.inbound import ButtonClick
from bot.messages import refusals
from bot.messages.base import Message, ephemeral_error, user_mention
from bot.workflow.rollout_moves import (
    Said,
    abort,
    current,
    kind_of,
    locked,
    now,
    pause,
    promote,
    resume,
)

log = logging.getLogger(__name__)

GOES_FURTHER = frozenset({RolloutAction.PROMOTE, RolloutAction.RESUME})


async def _may_stop(service: ServiceSection, user_id: str, change: Change,
                    members: authz.GroupMembers) -> authz.Decision:
    """Abort and Pause: whoever may request a change of the service, or approve it."""
    if user_id in (change.requested_by, change.confirmed_by):
        return authz.ALLOW
    if (await authz.may_request(service, user_id, members)).allowed:
        return authz.ALLOW
    if await authz.is_member(user_id, service.approvers, members):
        return authz.ALLOW
    return authz.Decision(False, "only the service's requesters and approvers may "
                                 "stop a rollout", "approver")


async def control(deps: Deps, click: ButtonClick, change_id: int | None) -> None:
    """The `rollout_control` job: one press of a running rollout's button."""
    action = RolloutAction(click.action_id)
    change = await deps.changes.get(change_id) if change_id is not None else None
    if change is None or current(change) is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "That rollout is not running any more"
            + (f" (it is {change.state.value})." if change else "."),
            "The thread shows how it ended; nothing was changed by this click."))
        return
    service = deps.catalog.services.get(change.service)
    if service is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            f"Service `{change.service}` is no longer in the catalog.", "Nothing was changed."))
        return
    members = partial(group_members, deps)
    decision = (await authz.may_confirm(service, click.user_id, change.requested_by, members)
                if action in GOES_FURTHER
                else await _may_stop(service, click.user_id, change, members))
    if not decision.allowed:
        await deps.audit.record(actor=click.user_id, action=action.value,
                                service=change.service, change_id=change.id,
                                outcome="denied", details={"reason": decision.reason})
        await deps.slack.respond(click.response_url, _refusal(decision, change.service,
                                                              service, action))
        return
    said = await _move(deps, click, change.id, action)
    if said is not None:
        await said()


async def _move(deps: Deps, click: ButtonClick, change_id: int,
                action: RolloutAction) -> Said | None:
    by = click.user_id
    async with locked(deps, change_id) as conn:
        change = await deps.changes.get(change_id, conn=conn)
        rollout = current(change)
        if change is None or rollout is None:
            problem = "That rollout ended while you clicked."
        elif action == RolloutAction.PAUSE and rollout.paused is not None:
            problem = f"The rollout is already holding ({rollout.paused})."
        elif action == RolloutAction.RESUME and rollout.paused is None:
            problem = "The rollout is not paused."
        elif action == RolloutAction.PAUSE:
            return await pause(deps, conn, change, rollout, f"paused by {user_mention(by)}",
                               by=by, at=now())
        elif action == RolloutAction.RESUME:
            return await resume(deps, conn, change, rollout, by=by)
        elif action == RolloutAction.PROMOTE:
            await deps.audit.record(conn=conn, actor=by, action=action.value,
                                    service=change.service, change_id=change.id)
            return await promote(deps, conn, kind_of(change), change, rollout)
        else:
            return await abort(deps, conn, kind_of(change), change, rollout,
                               f"requested at {rollout.percent}%", by=by)
    await deps.slack.respond(click.response_url, ephemeral_error(problem, "Nothing was changed."))
    return None


def _refusal(decision: authz.Decision, key: str, service: ServiceSection,
             action: RolloutAction) -> Message:
    if decision.code == "second_person":
        return ephemeral_error(
            "You requested this rollback, so a second person must promote or resume it.",
            "Ask a teammate who may approve; you may still Pause or Abort it.")
    if action in GOES_FURTHER:
        return refusals.not_an_approver(key, list(service.approvers))
    return ephemeral_error(
        "Only the service's requesters and approvers may pause or abort its rollout.",
        "Ask the requester or an approver in the thread.")
