"""The message value every builder returns."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock


@dataclasses.dataclass(frozen=True)
class Message:
    """Fallback text (notifications, screen readers) plus Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...] = ()

    def blocks_json(self) -> list[dict[str, Any]]:
        return [block.to_dict() for block in self.blocks]

    def as_kwargs(self) -> dict[str, Any]:
        """Arguments for chat.postMessage / chat.update / response_url posts."""
        out: dict[str, Any] = {"text": self.text}
        if self.blocks:
            out["blocks"] = self.blocks_json()
        return out


def mrkdwn_section(text: str, block_id: str | None = None) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text), block_id=block_id)


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def ephemeral_error(problem: str, hint: str = "") -> Message:
    text = f":warning: {problem}" + (f"\n{hint}" if hint else "")
    return Message(text=text, blocks=(mrkdwn_section(text),))


def when(value: dt.datetime | None) -> str:
    """A time people in different zones read the same way."""
    if value is None:
        return "unknown time"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def user_mention(user_id: str) -> str:
    return f"<@{user_id}>"
