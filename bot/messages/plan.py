"""The plan card: what serves now, what will serve, what was checked, who decides.

Posted in the channel when a rollback is proposed, and updated in place (chat.update)
as the rollback moves through its states. Also home of the small formatting helpers
the thread, history and refusal messages share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    HeaderBlock,
    SectionBlock,
)

from bot.changes.model import Change, State, Verdict
from bot.ids import (
    FollowUpAction,
    KindName,
    RollbackAction,
    RollbackBlock,
    plan_actions_block_id,
)
from bot.messages.base import Message, context, mrkdwn_section, user_mention, when
from bot.plans import CheckItem, Plan, RevisionFacts, ordered_traffic, traffic_plain

# Slack limits (https://docs.slack.dev/reference/block-kit/blocks).
SECTION_MAX = 3000
FIELD_MAX = 2000
HEADER_MAX = 150
CONFIRM_TEXT_MAX = 300
TEXT_MAX = 3000  # fallback text: notifications show a line or two anyway

CHECK_ICONS = {"ok": "✅", "fail": "❌", "todo": "☐"}
IN_PROGRESS = frozenset({State.CONFIRMED, State.EXECUTING, State.ROLLING_OUT,
                         State.VERIFYING})


# --- shared formatting helpers -------------------------------------------------------


def clip(text: str, limit: int = SECTION_MAX) -> str:
    """`text` cut to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def esc(text: str) -> str:
    """Escape text from outside (errors, HTTP details, user input) for mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def traffic_mrkdwn(traffic: Mapping[str, int] | None, sep: str = ", ") -> str:
    """`` `rev-a` 90%, `rev-b` 10% ``, largest share first."""
    if not traffic:
        return "nothing"
    return sep.join(f"`{rev}` {pct}%" for rev, pct in ordered_traffic(traffic))


def people(rollback: Change) -> str:
    """`requested by <@A>, confirmed by <@B>` (confirmer only once there is one)."""
    out = f"requested by {user_mention(rollback.requested_by)}"
    if rollback.confirmed_by:
        out += f", confirmed by {user_mention(rollback.confirmed_by)}"
    return out


def state_emoji(rollback: Change) -> str:
    if rollback.state == State.SUCCEEDED:
        return "⚠️" if rollback.verdict == Verdict.DEGRADED else "✅"
    if rollback.verdict == Verdict.ABORTED:
        return "🛑"
    return {
        State.PROPOSED: "⏳",
        State.CONFIRMED: "🔄",
        State.EXECUTING: "🔄",
        State.ROLLING_OUT: "🔄",
        State.VERIFYING: "🔄",
        State.FAILED: "❌",
        State.CANCELLED: "🚫",
    }.get(rollback.state, "•")


def status_line(rollback: Change, *, blocked: bool = False, immediate: bool = False) -> str:
    """One line saying where the rollback stands and who did what."""
    requester = user_mention(rollback.requested_by) if rollback.requested_by else None
    asked = f"Requested by {requester}" if requester else "Requested"
    if rollback.state == State.PROPOSED:
        if immediate:
            return f"{asked} · one person may: going ahead now"
        if blocked:
            return f"{asked} · ⛔ blocked, cannot be confirmed"
        return f"{asked} · needs confirmation from a second person"
    if rollback.state in IN_PROGRESS:
        confirmer = user_mention(rollback.confirmed_by) if rollback.confirmed_by else "?"
        stage = rollback.state.value.replace("_", " ")
        return f"🔄 Confirmed by {confirmer} · in progress ({stage}) — see thread"
    if rollback.state == State.SUCCEEDED:
        if rollback.verdict == Verdict.DEGRADED:
            return f"⚠️ Rollback done, verification degraded — see thread · {people(rollback)}"
        return f"✅ Rollback verified · {people(rollback)}"
    if rollback.state == State.FAILED and rollback.verdict == Verdict.ABORTED:
        error = esc(clip(rollback.error, 500)) if rollback.error else "see thread"
        return f"🛑 Gradual rollback {error} · the split from before is restored"
    if rollback.state == State.FAILED:
        error = esc(clip(rollback.error, 500)) if rollback.error else "see thread"
        return f"❌ Rollback failed: {error}"
    if rollback.state == State.CANCELLED:
        by = getattr(rollback, "cancelled_by", None)
        if by == "rollbot":
            return "🚫 Cancelled by rollbot"
        return f"🚫 Cancelled by {user_mention(by)}" if by else "🚫 Cancelled"
    return f"State: {rollback.state.value}"


# --- the plan card -------------------------------------------------------------------


def _principal(slack_id: str) -> str:
    """A user (<@U…>) or a user group (<!subteam^S…>), as Slack mentions them."""
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else user_mention(slack_id)


def _check_item(item: CheckItem) -> str:
    line = f"{CHECK_ICONS.get(item.status, '•')} {esc(item.text)}"
    return line + (f" — {esc(item.detail)}" if item.detail else "")


def _revision_field(label: str, facts: RevisionFacts | None,
                    missing: str = "nothing serving") -> str:
    if facts is None:
        return f"*{label}*\n{missing}"
    creator = f" by {esc(facts.creator)}" if facts.creator else ""
    ready = "Ready ✅" if facts.ready else "❌ NOT Ready"
    return clip(
        f"*{label}*: `{facts.name}`\n`{facts.image}`\n"
        f"created {when(facts.created)}{creator}\n{ready}",
        FIELD_MAX,
    )


def _buttons(plan: Plan, change: Change) -> list[ButtonElement]:
    """Confirm, Gradual (where the plan offers it) and Cancel; the preferred one styled."""
    value = str(change.id)
    gradual = KindName.GRADUAL.value in plan.alternatives
    gradual_first = gradual and plan.preferred == KindName.GRADUAL.value
    buttons = [
        ButtonElement(
            text="Confirm rollback",
            action_id=RollbackAction.CONFIRM.value,
            value=value,
            style=None if gradual_first else "primary",
            confirm=ConfirmObject(
                title="Confirm rollback",
                text=clip(plan.question, CONFIRM_TEXT_MAX),
                confirm="Roll back now",
                deny="Not yet",
            ),
        ),
    ]
    if gradual:
        buttons.append(ButtonElement(
            text="Gradual", action_id=RollbackAction.GRADUAL.value, value=value,
            style="primary" if gradual_first else None,
            confirm=ConfirmObject(
                title="Gradual rollback", confirm="Start gradually", deny="Not yet",
                text=clip(f"Move traffic to {plan.target.name if plan.target else '?'} in "
                          f"steps: {plan.staged}?", CONFIRM_TEXT_MAX))))
    buttons.append(ButtonElement(text="Cancel", action_id=RollbackAction.CANCEL.value,
                                 value=value))
    return buttons


def _serving(plan: Plan) -> list[Block]:
    """What serves now and after, for a Cloud Run change; a change of something else
    (a flag) says it in its one line of changes."""
    if not plan.cloud_run_service:
        return []
    serving = clip(f"*Serving now*\n{traffic_mrkdwn(plan.current_traffic, sep=chr(10))}",
                   FIELD_MAX)
    will = clip(f"*Will serve*\n{_will_serve(plan)}", FIELD_MAX)
    return [SectionBlock(fields=[serving, will]), SectionBlock(fields=[
        _revision_field("Current", plan.current),
        _revision_field("Target", plan.target, "a new revision, created on Confirm"),
    ])]


def _blocked_buttons(plan: Plan, change: Change) -> list[ButtonElement]:
    """No Confirm, no Gradual: an approver's override (a modal asks the reason), the
    blocker's remedy where there is one, and Cancel."""
    value = str(change.id)
    buttons = [ButtonElement(text="Override blocker", action_id=RollbackAction.OVERRIDE.value,
                             value=value, style="danger")]
    if plan.remedy:
        buttons.append(ButtonElement(text=clip(str(plan.remedy["label"]), 75),
                                     action_id=FollowUpAction.REMEDY.value, value=value,
                                     style="primary"))
    buttons.append(ButtonElement(text="Cancel", action_id=RollbackAction.CANCEL.value,
                                 value=value))
    return buttons


def _undo(change: Change) -> ButtonElement:
    return ButtonElement(text="Undo", action_id=FollowUpAction.UNDO.value, value=str(change.id))


def _will_serve(plan: Plan) -> str:
    return plan.will_serve or traffic_mrkdwn(plan.target_traffic)


def plan_card(
    plan: Plan,
    change: Change | None,
    *,
    dry_run: bool = False,
    final_note: str | None = None,
    validation: str | None = None,
    undoable: bool = False,
    running: Sequence[Block] = (),
) -> Message:
    """The plan card in the channel; buttons only while a real change awaits a decision.

    Without a change it is shown to the requester only: a dry run (with what the
    outside system answered to `validation`), or a blocked request, which is not one.
    `undoable`: the change is over and its kind can reverse it (an Undo button).
    `running`: what a change that runs a while shows of itself (a rollout's progress
    and buttons).
    """
    prefix = "DRY RUN — " if dry_run else ""
    title = f"{prefix}Rollback plan: {plan.headline}"
    blocks: list[Block] = [
        HeaderBlock(text=clip(title, HEADER_MAX), block_id=RollbackBlock.PLAN_HEADER.value)
    ]

    if plan.pointless:
        blocks.append(mrkdwn_section(clip("⛔ *Nothing to do.*\n" + "\n".join(
            _check_item(item) for item in plan.blockers if not item.overridable))))
    elif plan.blocked:
        blockers = "\n".join(_check_item(item) for item in plan.blockers)
        escalate = (" to " + ", ".join(_principal(p) for p in plan.escalate)
                    if plan.escalate else "")
        remedy = (f" Or first: *{esc(plan.remedy['label'])}* ({esc(plan.remedy['says'])})."
                  if plan.remedy else "")
        blocks.append(mrkdwn_section(clip(
            "⛔ *Blocked — rollbot will not run this rollback.*\n"
            f"{blockers}\n"
            f"*Stop and escalate{escalate}.* Fix the cause or pick another revision "
            f"(`/rollback {plan.service}` lists them).{remedy} An approver other than the "
            "requester may override, giving a reason.")))
    elif plan.override:
        by, reason = plan.override.get("by", "?"), plan.override.get("reason", "")
        blocks.append(mrkdwn_section(clip(
            f"🔓 *Blockers overridden by {user_mention(str(by))}:* {esc(str(reason))}\n"
            + "\n".join(_check_item(item) for item in plan.blockers))))
    for warning in plan.warnings:
        blocks.append(mrkdwn_section(clip(f"⚠️ {esc(warning)}")))

    blocks += _serving(plan)
    if plan.changes:
        lines = "\n".join(f"• {esc(line)}" for line in plan.changes)
        blocks.append(mrkdwn_section(clip(f"*What changes*\n{lines}")))

    if plan.checklist:
        items = "\n".join(_check_item(item) for item in plan.checklist)
        blocks.append(mrkdwn_section(clip(
            f"*Pre-rollback checklist* (☐ = yours to check)\n{items}")))
    if plan.dependent_services:
        deps = ", ".join(f"`{esc(s)}`" for s in plan.dependent_services)
        blocks.append(context(clip(f"Dependent services (coordinate): {deps}")))

    if plan.staged and not plan.blocked:
        blocks.append(mrkdwn_section(clip(f"*Gradual*: {esc(plan.staged)}")))
    blocks.append(mrkdwn_section(clip(
        f"*If rollbot is down, run by hand:*\n```{plan.command}```")))
    if validation:
        blocks.append(mrkdwn_section(clip(f"*Validation:* {esc(validation)}")))

    status: str | None = None
    if change is not None:
        status = status_line(change, blocked=plan.blocked, immediate=plan.immediate)
    elif dry_run:
        status = ("Dry run: nothing was changed. Run the same command without `--dry-run` "
                  "to propose it.")
    elif plan.blocked:
        status = "⛔ Not proposed: nothing to do, nothing was changed."
    if status:
        blocks.append(mrkdwn_section(clip(status)))
    if final_note:
        blocks.append(context(clip(esc(final_note))))  # plain text, maybe from outside
    blocks.extend(running)

    if (change is not None and change.state == State.PROPOSED and not dry_run
            and not plan.immediate):
        blocks.append(ActionsBlock(
            elements=_blocked_buttons(plan, change) if plan.blocked else _buttons(plan, change),
            block_id=plan_actions_block_id(change.kind, change.subject)))
    if change is not None and undoable:
        blocks.append(ActionsBlock(elements=[_undo(change)],
                                   block_id=RollbackBlock.FOLLOW_UPS.value))

    text = (f"{title} · serving now: {traffic_plain(plan.current_traffic)}"
            if plan.cloud_run_service else title)
    if plan.blocked:
        text += " · BLOCKED: " + "; ".join(item.text for item in plan.blockers)
    if status:
        text += f" · {status}"
    if final_note:
        text += f" · {final_note}"
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))
