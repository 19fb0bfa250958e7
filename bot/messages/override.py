"""The Override blocker modal (views.open) and the announcement of an override."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
)
from slack_sdk.models.views import View

from bot.changes.model import Change
from bot.ids import OverrideView
from bot.messages.base import Message, context, mrkdwn_section, user_mention
from bot.messages.plan import clip, esc
from bot.plans import Plan

REASON_MIN, REASON_MAX = 10, 1000


def override_modal(change: Change, plan: Plan) -> dict[str, Any]:
    blockers = "\n".join(f"❌ *{esc(b.text)}*" + (f" — {esc(b.detail)}" if b.detail else "")
                         for b in plan.blockers)
    view = View(
        type="modal", callback_id=OverrideView.CALLBACK.value,
        private_metadata=str(change.id),
        title=PlainTextObject(text="Override blocker"),
        submit=PlainTextObject(text="Override"), close=PlainTextObject(text="Cancel"),
        blocks=[
            mrkdwn_section(clip(f"*Rollback #{change.id}: {esc(plan.headline)}*\n"
                                f"requested by {user_mention(change.requested_by)}")),
            mrkdwn_section(clip(f"The runbook says *stop and escalate*. Overriding lifts "
                                f"every blocker below:\n{blockers}")),
            InputBlock(
                block_id=OverrideView.REASON_BLOCK.value,
                label=PlainTextObject(text="Why is it safe to go on anyway?"),
                element=PlainTextInputElement(
                    action_id=OverrideView.REASON_INPUT.value, multiline=True,
                    min_length=REASON_MIN, max_length=REASON_MAX,
                    placeholder=PlainTextObject(text="e.g. DBA confirmed the migration is "
                                                     "backward compatible")),
                hint=PlainTextObject(text="Audited and announced in the channel. The usual "
                                          "confirm rules still apply after it."),
            ),
            context("Confirm's rules still apply after the override: a second person confirms."),
        ])
    return view.to_dict()


def reason_problem(reason: str) -> str | None:
    """What is wrong with a typed reason (shown under the input), or None."""
    if len(reason) < REASON_MIN:
        return f"Say why in at least {REASON_MIN} characters: it is audited and announced."
    if len(reason) > REASON_MAX:
        return f"At most {REASON_MAX} characters, please."
    return None


def override_announcement(change: Change, plan: Plan, by: str, reason: str) -> Message:
    blockers = "; ".join(b.text for b in plan.blockers)
    text = (f"🔓 {user_mention(by)} overrode the blockers of rollback #{change.id} "
            f"({esc(plan.headline)}): {esc(blockers)}. Reason: {esc(reason)}")
    return Message(text=clip(text, 3000), blocks=(
        mrkdwn_section(clip(text)),
        context("The plan card now offers Confirm; a second person still confirms.")))
