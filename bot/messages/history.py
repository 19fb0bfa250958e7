"""`/rollback history <service>`: the last 10 rollbacks, newest first."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.changes.model import Change, State, Verdict
from bot.messages.base import Message, context, mrkdwn_section, user_mention, when
from bot.messages.plan import HEADER_MAX, TEXT_MAX, clip, esc, people, state_emoji
from bot.plans import Plan

SHOWN = 10


def _headline(change: Change) -> str:
    return Plan.from_json(change.plan).headline if change.plan else change.subject


def _line(rollback: Change) -> str:
    state = rollback.state.value
    if rollback.state == State.SUCCEEDED and rollback.verdict:
        state = f"{state} ({rollback.verdict})"
    elif rollback.verdict == Verdict.ABORTED:
        state = "aborted (split restored)"
    line = (f"{state_emoji(rollback)} *#{rollback.id}* · {when(rollback.created_at)} · "
            f"{rollback.kind}: {esc(_headline(rollback))} · {state}\n{people(rollback)}")
    if rollback.dry_run:
        line += " · dry run"
    if rollback.state == State.CANCELLED:
        by = getattr(rollback, "cancelled_by", None)
        if by:
            line += " · cancelled by " + ("rollbot" if by == "rollbot" else user_mention(by))
    if rollback.state == State.FAILED and rollback.error:
        line += f"\n_{esc(clip(rollback.error, 300))}_"
    return clip(line)


def history_message(service: str, rollbacks: list[Change]) -> Message:
    """The last 10 rollbacks of `service` (newest first), or that there are none."""
    if not rollbacks:
        text = f"No rollbacks of {service} yet."
        return Message(text=text, blocks=(mrkdwn_section(text),))
    newest = sorted(rollbacks, key=lambda r: (r.created_at, r.id), reverse=True)[:SHOWN]
    blocks: list[Block] = [HeaderBlock(text=clip(f"Rollback history: {service}", HEADER_MAX))]
    blocks += [mrkdwn_section(_line(r)) for r in newest]
    if len(rollbacks) > SHOWN:
        blocks.append(context(f"Showing the last {SHOWN} of {len(rollbacks)}."))
    text = f"Rollbacks of {service} (newest first): " + "; ".join(
        f"#{r.id} {r.state.value} {r.kind}: {_headline(r)} ({when(r.created_at)})"
        for r in newest)
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))
