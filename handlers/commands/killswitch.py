"""`/killswitch …`: the application's kill switches (bot/switch_intents.py parses it)."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.switch_intents import parse_killswitch
from handlers.commands.switch_command import answer


async def killswitch_command(ack: AsyncAck, command: dict[str, Any], context: Any) -> None:
    await answer(ack, command, context, parse_killswitch)
