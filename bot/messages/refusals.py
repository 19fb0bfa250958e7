"""Ephemeral refusals: what was refused, why, and what to do instead.

Only the person who acted sees these; nothing was changed when one is shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.changes.model import Change, State
from bot.messages.base import Message, ephemeral_error, user_mention
from bot.messages.plan import clip, esc
from bot.plans import Plan


def slack_ref(slack_id: str) -> str:
    """A mention of a user (U…/W…) or a user group (S…)."""
    if slack_id.startswith("S"):
        return f"<!subteam^{slack_id}>"
    return user_mention(slack_id)


def _refs(ids: Sequence[str]) -> str:
    return ", ".join(slack_ref(i) for i in ids)


def active_rollback_exists(active: Change, permalink: str | None) -> Message:
    """Another rollback of the service is under way: one at a time."""
    problem = (f"`{active.service}` already has an active rollback: "
               f"#{active.id} {Plan.from_json(active.plan).headline}, "
               f"{active.state.value.replace('_', ' ')}, "
               f"requested by {user_mention(active.requested_by)}.")
    where = f"<{permalink}|its plan card>" if permalink else f"<#{active.channel_id}>"
    hint = f"One rollback per service at a time. Follow or cancel it first: {where}."
    return ephemeral_error(problem, hint)


def needs_second_person() -> Message:
    return ephemeral_error(
        "This rollback needs a second person: you requested it, so you can't confirm it.",
        "Ask a teammate who may approve to click *Confirm rollback*.")


def not_an_approver(service: str, approvers: list[str]) -> Message:
    problem = f"You can't confirm rollbacks of `{service}`: you're not one of its approvers."
    if approvers:
        hint = f"Who may confirm: {_refs(approvers)}. Ask one of them to click *Confirm rollback*."
    else:
        hint = f"No approvers are set: ask an operator to fix `services.{service}.approvers`."
    return ephemeral_error(problem, clip(hint, 2500))


def not_incident_channel(pattern: str) -> Message:
    return ephemeral_error(
        f"Rollbacks run only in incident channels: names matching `{esc(pattern)}`.",
        "Run `/rollback` in the incident's channel (e.g. `#inc-…`), so everyone sees it.")


def already_handled(rollback: Change) -> Message:
    """Someone got there first (a second click, a teammate, or a finished rollback)."""
    if rollback.state == State.CANCELLED:
        by = getattr(rollback, "cancelled_by", None)
        who = f" by {user_mention(by)}" if by and by != "rollbot" else (
            " by rollbot" if by else "")
        problem = f"Rollback #{rollback.id} was already cancelled{who}."
    elif rollback.state == State.PROPOSED:
        problem = f"Rollback #{rollback.id} is still waiting for confirmation."
    elif rollback.state in (State.SUCCEEDED, State.FAILED):
        problem = f"Rollback #{rollback.id} already finished: {rollback.state.value}."
    else:
        who = f" by {user_mention(rollback.confirmed_by)}" if rollback.confirmed_by else ""
        problem = f"Rollback #{rollback.id} was already confirmed{who} and is in progress."
    return ephemeral_error(problem, "Nothing more to do here: follow the thread.")


def not_a_requester(service: str, requesters: Sequence[str] = ()) -> Message:
    problem = f"You can't request rollbacks of `{service}`."
    hint = (f"Who may: {_refs(requesters)}." if requesters
            else f"Ask someone listed in `services.{service}.requesters`.")
    return ephemeral_error(problem, clip(hint, 2500))


def plan_error(problem: str, hint: str) -> Message:
    """No plan could be made; nothing was changed."""
    return ephemeral_error(clip(esc(problem), 1500), clip(esc(hint), 1000))


def cannot_cancel(service: str, requested_by: str, approvers: Sequence[str]) -> Message:
    problem = f"You can't cancel this rollback of `{service}`."
    who = [requested_by, *approvers]
    return ephemeral_error(problem, clip(
        f"The requester or an approver may: {_refs(who)}. Nothing was changed.", 2500))


def blocked(plan: Plan) -> Message:
    """A Confirm (or Gradual) on a plan whose blockers stand: a stale or forged click."""
    reasons = "; ".join(item.text for item in plan.blockers)
    return ephemeral_error(
        clip(f"This rollback is blocked: {esc(reasons)}.", 1500),
        "Nothing was changed. Escalate, or an approver other than the requester may "
        "*Override blocker* on the card, giving a reason.")


def cannot_override(requester: bool, service: str, approvers: Sequence[str]) -> Message:
    if requester:
        return ephemeral_error("You requested this rollback, so you can't override its "
                               "blockers.", "Ask another approver to review it.")
    return ephemeral_error(f"Only approvers of `{service}` may override a blocker.",
                           clip(f"Who may: {_refs(list(approvers))}.", 2500))
