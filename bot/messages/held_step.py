"""A change's step held for a second confirmation: its button in the thread, and the
line once it is done (or refused by the outside system)."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject

from bot.changes.kind import FinalStep
from bot.changes.model import Change
from bot.ids import RollbackAction
from bot.messages.base import Message, context, mrkdwn_section, user_mention
from bot.messages.plan import CONFIRM_TEXT_MAX, clip, esc


def held_step_offer(change: Change, step: FinalStep) -> Message:
    text = (f"⏸ *Last step, waiting for a second confirmation:* {esc(step.question)}\n"
            "The rollback is verified without it; nothing happens until an approver "
            "clicks (the requester can't).")
    return Message(text=f"Waiting for a second confirmation: {step.label}", blocks=(
        mrkdwn_section(clip(text)),
        ActionsBlock(block_id=f"held_step:{change.id}", elements=[ButtonElement(
            text=step.label, action_id=RollbackAction.FINAL_STEP.value, value=str(change.id),
            style="danger", confirm=ConfirmObject(
                title="Second confirmation", text=clip(step.question, CONFIRM_TEXT_MAX),
                confirm=clip(step.label, 30), deny="Not yet"))]),
        context(f"#{change.id}")))


def held_step_done(step: FinalStep, by: str) -> Message:
    text = f"✅ {step.label}: done, confirmed by {user_mention(by)}"
    return Message(text=f"✅ {step.label}: done", blocks=(mrkdwn_section(clip(text)),))


def held_step_failed(step: FinalStep, error: str) -> Message:
    text = f"❌ {step.label} failed: {error}. Nothing else changed; try the button again."
    return Message(text=text, blocks=(mrkdwn_section(clip(esc(text))),))
