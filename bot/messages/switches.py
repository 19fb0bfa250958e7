"""`/flag list`, `/killswitch list` and `status`: the application's switches, as read."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.changes.model import Change
from bot.messages.base import Message, context, mrkdwn_section, user_mention, when
from bot.messages.plan import HEADER_MAX, TEXT_MAX, clip, esc
from integrations.app_flags import Flag
from integrations.kill_switches import SwitchState


def _on(on: bool) -> str:
    return "🟢 on" if on else "⚪ off"


def flags_message(found: Sequence[tuple[str, Flag, Change | None]], problems: Sequence[str],
                  filter_: str) -> Message:
    """Each flag (group, flag, rollbot's last change of it, if any)."""
    head = f"Feature flags{f' matching “{filter_}”' if filter_ else ''}: {len(found)}"
    blocks: list[Block] = [HeaderBlock(text=clip(head, HEADER_MAX))]
    lines = []
    for group, flag, last in found:
        line = f"{_on(flag.enabled)} · `{esc(flag.name)}` · {esc(group)}"
        if last is not None:
            line += (f" · last changed by {user_mention(last.confirmed_by or last.requested_by)}"
                     f" {when(last.created_at)}")
        elif flag.updated_at is not None:
            line += f" · updated {when(flag.updated_at)}"
        lines.append(line)
    blocks.append(mrkdwn_section(clip("\n".join(lines) or "No flag matches.")))
    for problem in problems:
        blocks.append(context(clip(f"⚠️ {esc(problem)}")))
    blocks.append(context("`/flag off <name>` turns one off (a teammate confirms)."))
    text = head + ": " + ", ".join(f"{f.name} {'on' if f.enabled else 'off'}"
                                   for _, f, _ in found)
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))


def switches_message(found: Sequence[tuple[str, SwitchState, bool]],
                     problems: Sequence[str]) -> Message:
    """Each switch (group, state, whether the catalog knows it)."""
    head = f"Kill switches: {sum(s.on for _, s, _ in found)} on of {len(found)}"
    lines = [f"{'🔴 ON' if s.on else '⚪ off'} · `{esc(s.name)}` · {esc(group)}"
             + ("" if known else " · not in the catalog") for group, s, known in found]
    blocks: list[Block] = [HeaderBlock(text=clip(head, HEADER_MAX)),
                           mrkdwn_section(clip("\n".join(lines) or "None."))]
    for problem in problems:
        blocks.append(context(clip(f"⚠️ {esc(problem)}")))
    blocks.append(context("`/killswitch <name> on` pulls one at once; `off` needs a teammate."))
    text = head + ": " + ", ".join(f"{s.name} {'on' if s.on else 'off'}" for _, s, _ in found)
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))


def switch_status_message(group: str, state: SwitchState) -> Message:
    raw = "(no key)" if state.raw is None else f"`{esc(state.raw[:200])}`"
    text = (f"Kill switch `{esc(state.name)}` ({esc(group)}): "
            f"{'🔴 ON' if state.on else '⚪ off'} · key `kill_switch:{esc(state.name)}` = {raw}")
    return Message(text=clip(text, TEXT_MAX), blocks=(mrkdwn_section(clip(text)),))
