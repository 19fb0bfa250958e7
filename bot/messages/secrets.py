"""`/rollback secret NAME`: a secret's versions and who reads which (never a value)."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.messages.base import Message, context, mrkdwn_section
from bot.messages.plan import HEADER_MAX, TEXT_MAX, clip, esc
from bot.secret_usage import SecretUse
from integrations.secret_manager import SecretVersion

_STATE_ICON = {"enabled": "🟢", "disabled": "⚪", "destroyed": "🗑"}
MAX_VERSIONS = 20


def _reader(use: SecretUse) -> str:
    where = (f"`{esc(use.revision)}`" + (f" ({use.serving}% serving)" if use.serving else "")
             if use.revision else "template (next deploys)")
    alias = " via `latest`" if use.version == "latest" else ""
    return f"{esc(use.service)} {where}{alias}"


def secret_versions_message(secret: str, versions: Sequence[SecretVersion],
                            uses: Sequence[SecretUse]) -> Message:
    newest = versions[0].version if versions else None
    head = f"Secret {secret}: {len(versions)} versions"
    blocks: list[Block] = [HeaderBlock(text=clip(head, HEADER_MAX))]
    lines = []
    for version in versions[:MAX_VERSIONS]:
        created = version.created.strftime("%Y-%m-%d %H:%M UTC") if version.created else "?"
        latest = " · `latest`" if version.version == newest else ""
        readers = [_reader(u) for u in uses if u.resolved == version.version]
        read = ("\n    read by " + "; ".join(readers)) if readers else ""
        lines.append(f"{_STATE_ICON.get(version.state, '❔')} *version {esc(version.version)}* "
                     f"· {version.state} · created {created}{latest}{read}")
    blocks.append(mrkdwn_section(clip("\n".join(lines) or "No versions.")))
    if len(versions) > MAX_VERSIONS:
        blocks.append(context(f"…and {len(versions) - MAX_VERSIONS} older versions."))
    if not uses:
        blocks.append(context("No service in the catalog refers to this secret."))
    blocks.append(context(f"`/rollback secret {secret} <version>` rolls every service that "
                          "reads it back to that version. Values are never shown."))
    text = f"{head}: " + ", ".join(f"{v.version} {v.state}" for v in versions[:MAX_VERSIONS])
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))


def step_line(number: int, total: int, what: str) -> Message:
    text = f"✅ Step {number}/{total} · {what[:1].upper()}{what[1:]}: done"
    return Message(text=text, blocks=(mrkdwn_section(clip(esc(text))),))


def steps_failed(secret: str, done: Sequence[str], failed: str, error: str,
                 not_done: Sequence[str]) -> Message:
    """A secret change stopped at a step: exactly what was done and what was not."""
    lines = [*(f"✅ done: {esc(s)}" for s in done), f"❌ failed: {esc(failed)} ({esc(error)})",
             *(f"⏹ not done: {esc(s)}" for s in not_done)]
    head = f"❌ *Secret rollback of {esc(secret)} stopped*"
    tail = ("Undo reverses what was done." if done else "Nothing was changed.")
    text = f"Secret rollback of {secret} stopped at: {failed} ({error}). {tail}"
    return Message(text=clip(text, TEXT_MAX), blocks=(
        mrkdwn_section(clip(head + "\n" + "\n".join(lines))), context(tail)))
