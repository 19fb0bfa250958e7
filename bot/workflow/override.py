"""An approver's override of a blocked plan (the runbook's "stop and escalate", when the
escalation says go on): the card's Override blocker button opens a modal asking the
reason (views.open, from the click's trigger id); its submission records the override
in the plan, once, audits it (`blocker_overridden`: reason, blockers, who) and announces
it in the channel. The card then offers Confirm, and Confirm's rules still apply.

The requester cannot override their own request; the overrider must be an approver of
every service the change touches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from functools import partial

from slack_sdk.errors import SlackApiError

from bot import authz
from bot.changes.model import Change, State
from bot.deps import Deps, group_members
from bot.inbound import ButtonClick, OverrideSubmission
from bot.messages import refusals
from bot.messages.base import Message, ephemeral_error
from bot.messages.override import override_announcement, override_modal, reason_problem
from bot.plans import Plan
from bot.workflow.posting import refresh_card

log = logging.getLogger(__name__)


def _overridable(change: Change | None) -> tuple[Change, Plan] | None:
    if change is None or change.state != State.PROPOSED:
        return None
    plan = Plan.from_json(change.plan)
    return (change, plan) if plan.blocked else None


async def _refusal(deps: Deps, user_id: str, change: Change, plan: Plan) -> Message | None:
    """Why `user_id` may not override (None: they may)."""
    for name in plan.touched:
        service = deps.catalog.services.get(name)
        if service is None:
            return ephemeral_error(f"Service `{name}` is no longer in the catalog.",
                                   "Nothing was changed.")
        if user_id == change.requested_by:
            return refusals.cannot_override(True, name, service.approvers)
        if not await authz.is_member(user_id, service.approvers, partial(group_members, deps)):
            return refusals.cannot_override(False, name, service.approvers)
    return None


async def _denied(deps: Deps, user_id: str, change: Change, reason: str) -> None:
    await deps.audit.record(actor=user_id, action="blocker_overridden", service=change.service,
                            change_id=change.id, outcome="denied", details={"reason": reason})


async def open_modal(deps: Deps, click: ButtonClick, change_id: int | None) -> None:
    """The Override blocker button: who may, then the modal."""
    found = _overridable(await deps.changes.get(change_id) if change_id is not None else None)
    if found is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "There is no blocked plan to override here: it was decided, overridden or "
            "expired.", "Nothing was changed."))
        return
    change, plan = found
    refusal = await _refusal(deps, click.user_id, change, plan)
    if refusal is not None:
        await _denied(deps, click.user_id, change, "not allowed to override")
        await deps.slack.respond(click.response_url, refusal)
        return
    try:
        await deps.slack.client.views_open(trigger_id=click.trigger_id,
                                           view=override_modal(change, plan))
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        await deps.slack.respond(click.response_url, ephemeral_error(
            f"Slack did not open the override form ({error}).",
            "Click *Override blocker* again. Nothing was changed."))


async def _tell(deps: Deps, change: Change, user_id: str, message: Message) -> None:
    try:
        await deps.slack.client.chat_postEphemeral(channel=change.channel_id, user=user_id,
                                                   **message.as_kwargs())
    except SlackApiError as exc:
        log.warning("could not tell %s about override of %s: %s", user_id, change.id,
                    exc.response.get("error"))


async def apply(deps: Deps, submission: OverrideSubmission) -> None:
    """The modal, submitted (its reason already checked by the listener)."""
    change = (await deps.changes.get(submission.change_id)
              if submission.change_id is not None else None)
    found = _overridable(change)
    if found is None or reason_problem(submission.reason):
        if change is not None:
            await _tell(deps, change, submission.user_id, ephemeral_error(
                f"Rollback #{change.id} has no blockers left to override (decided, "
                "overridden or expired).", "Nothing was changed."))
        return
    change, plan = found
    refusal = await _refusal(deps, submission.user_id, change, plan)
    if refusal is not None:
        await _denied(deps, submission.user_id, change, "not allowed to override")
        await _tell(deps, change, submission.user_id, refusal)
        return
    blockers = [b.text for b in plan.blockers]
    override = {"by": submission.user_id, "reason": submission.reason, "blockers": blockers,
                "at": dt.datetime.now(dt.UTC).isoformat()}
    async with deps.pool.connection() as conn, conn.transaction():
        overridden = await deps.changes.override_blockers(change.id, override, conn=conn)
        if overridden is not None:
            await deps.audit.record(
                conn=conn, actor=submission.user_id, action="blocker_overridden",
                service=change.service, change_id=change.id,
                details={"reason": submission.reason, "blockers": blockers})
    if overridden is None:
        await _tell(deps, change, submission.user_id, ephemeral_error(
            "Someone else decided this plan first.", "Nothing was changed."))
        return
    await deps.slack.post(change.channel_id, override_announcement(
        change, dataclasses.replace(plan, override=override), submission.user_id,
        submission.reason))
    await refresh_card(deps, overridden)
