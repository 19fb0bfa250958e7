"""The plan card: what serves now, what will serve, what was checked, who decides.

Posted in the channel when a rollback is proposed, and updated in place (chat.update)
as the rollback moves through its states. Also home of the small formatting helpers
the thread, history and refusal messages share.
"""

from __future__ import annotations

from collections.abc import Mapping

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    HeaderBlock,
    SectionBlock,
)

from bot.ids import RollbackAction, RollbackBlock, plan_actions_block_id
from bot.messages.base import Message, context, mrkdwn_section, user_mention, when
from bot.plans import CheckItem, Plan, RevisionFacts, ordered_traffic, traffic_plain
from bot.rollbacks.model import Rollback, State, Verdict

# Slack limits (https://docs.slack.dev/reference/block-kit/blocks).
SECTION_MAX = 3000
FIELD_MAX = 2000
HEADER_MAX = 150
CONFIRM_TEXT_MAX = 300
TEXT_MAX = 3000  # fallback text: notifications show a line or two anyway

CHECK_ICONS = {"ok": "✅", "fail": "❌", "todo": "☐"}
IN_PROGRESS = frozenset({State.CONFIRMED, State.EXECUTING, State.VERIFYING})


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


def people(rollback: Rollback) -> str:
    """`requested by <@A>, confirmed by <@B>` (confirmer only once there is one)."""
    out = f"requested by {user_mention(rollback.requested_by)}"
    if rollback.confirmed_by:
        out += f", confirmed by {user_mention(rollback.confirmed_by)}"
    return out


def state_emoji(rollback: Rollback) -> str:
    if rollback.state == State.SUCCEEDED:
        return "⚠️" if rollback.verdict == Verdict.DEGRADED else "✅"
    return {
        State.PROPOSED: "⏳",
        State.CONFIRMED: "🔄",
        State.EXECUTING: "🔄",
        State.VERIFYING: "🔄",
        State.FAILED: "❌",
        State.CANCELLED: "🚫",
    }.get(rollback.state, "•")


def status_line(rollback: Rollback, *, blocked: bool = False) -> str:
    """One line saying where the rollback stands and who did what."""
    requester = user_mention(rollback.requested_by) if rollback.requested_by else None
    asked = f"Requested by {requester}" if requester else "Requested"
    if rollback.state == State.PROPOSED:
        if blocked:
            return f"{asked} · ⛔ blocked, cannot be confirmed"
        return f"{asked} · needs confirmation from a second person"
    if rollback.state in IN_PROGRESS:
        confirmer = user_mention(rollback.confirmed_by) if rollback.confirmed_by else "?"
        return f"🔄 Confirmed by {confirmer} · in progress ({rollback.state.value}) — see thread"
    if rollback.state == State.SUCCEEDED:
        if rollback.verdict == Verdict.DEGRADED:
            return f"⚠️ Rollback done, verification degraded — see thread · {people(rollback)}"
        return f"✅ Rollback verified · {people(rollback)}"
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


def _check_item(item: CheckItem) -> str:
    line = f"{CHECK_ICONS.get(item.status, '•')} {esc(item.text)}"
    return line + (f" — {esc(item.detail)}" if item.detail else "")


def _revision_field(label: str, facts: RevisionFacts | None) -> str:
    if facts is None:
        return f"*{label}*\nnothing serving"
    creator = f" by {esc(facts.creator)}" if facts.creator else ""
    ready = "Ready ✅" if facts.ready else "❌ NOT Ready"
    return clip(
        f"*{label}*: `{facts.name}`\n`{facts.image}`\n"
        f"created {when(facts.created)}{creator}\n{ready}",
        FIELD_MAX,
    )


def _buttons(plan: Plan, rollback: Rollback) -> list[ButtonElement]:
    value = str(rollback.id)
    ask = (f"Shift 100% of {plan.service} ({plan.cloud_run_service}) traffic "
           f"to {plan.target.name}?")
    buttons = [
        ButtonElement(
            text="Confirm rollback",
            action_id=RollbackAction.CONFIRM.value,
            value=value,
            style="primary",
            confirm=ConfirmObject(
                title="Confirm rollback",
                text=clip(ask, CONFIRM_TEXT_MAX),
                confirm="Roll back now",
                deny="Not yet",
            ),
        ),
    ]
    # Gradual rollout (RollbackAction.GRADUAL) goes here, between Confirm and Cancel.
    buttons.append(ButtonElement(
        text="Cancel", action_id=RollbackAction.CANCEL.value, value=value))
    return buttons


def plan_card(
    plan: Plan,
    rollback: Rollback | None,
    *,
    dry_run: bool = False,
    final_note: str | None = None,
) -> Message:
    """The plan card in the channel; buttons only while a real rollback awaits a decision."""
    prefix = "DRY RUN — " if dry_run else ""
    title = f"{prefix}Rollback plan: {plan.service} → {plan.target.name}"
    blocks: list[Block] = [
        HeaderBlock(text=clip(title, HEADER_MAX), block_id=RollbackBlock.PLAN_HEADER.value)
    ]

    if plan.blocked:
        blockers = "\n".join(_check_item(item) for item in plan.blockers)
        blocks.append(mrkdwn_section(clip(
            "⛔ *Blocked — rollbot will not run this rollback.*\n"
            f"{blockers}\n"
            f"*Stop and escalate.* Fix the cause or pick another revision "
            f"(`/rollback {plan.service}` lists them).")))

    serving = clip(f"*Serving now*\n{traffic_mrkdwn(plan.current_traffic, sep=chr(10))}",
                   FIELD_MAX)
    will = clip(f"*Will serve*\n{traffic_mrkdwn(plan.target_traffic)}", FIELD_MAX)
    blocks.append(SectionBlock(fields=[serving, will]))
    blocks.append(SectionBlock(fields=[
        _revision_field("Current", plan.current),
        _revision_field("Target", plan.target),
    ]))

    if plan.checklist:
        items = "\n".join(_check_item(item) for item in plan.checklist)
        blocks.append(mrkdwn_section(clip(
            f"*Pre-rollback checklist* (☐ = yours to check)\n{items}")))
    if plan.dependent_services:
        deps = ", ".join(f"`{esc(s)}`" for s in plan.dependent_services)
        blocks.append(context(clip(f"Dependent services (coordinate): {deps}")))

    blocks.append(mrkdwn_section(clip(
        f"*If rollbot is down, run by hand:*\n```{plan.gcloud_command}```")))

    status: str | None = None
    if rollback is not None:
        status = status_line(rollback, blocked=plan.blocked)
    elif dry_run:
        status = (f"Dry run: nothing was changed. Run `/rollback {plan.service} "
                  f"{plan.target.name}` without `--dry-run` to propose it.")
    if status:
        blocks.append(mrkdwn_section(clip(status)))
    if final_note:
        blocks.append(context(clip(esc(final_note))))  # plain text, maybe from outside

    if (rollback is not None and rollback.state == State.PROPOSED
            and not dry_run and not plan.blocked):
        blocks.append(ActionsBlock(
            elements=_buttons(plan, rollback), block_id=plan_actions_block_id(plan.service)))

    text = f"{title} · serving now: {traffic_plain(plan.current_traffic)}"
    if plan.blocked:
        text += " · BLOCKED: " + "; ".join(item.text for item in plan.blockers)
    if status:
        text += f" · {status}"
    if final_note:
        text += f" · {final_note}"
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))
