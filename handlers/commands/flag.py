"""`/flag …`: the application's feature flags (bot/switch_intents.py parses it)."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.switch_intents import parse_flag
from handlers.commands.switch_command import answer


async def flag_command(ack: AsyncAck, command: dict[str, Any], context: Any) -> None:
    await answer(ack, command, context, parse_flag)
