"""`/flag …`: parse, answer bad input on the ack, else ack and hand off."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import SlashCommand
from bot.parsing import CommandError
from bot.switch_intents import parse_flag
from handlers.handoff import report_failed_handoff


async def flag_command(ack: AsyncAck, command: dict[str, Any], context: Any) -> None:
    deps = from_context(context)
    request = SlashCommand.from_payload(command)
    intent = parse_flag(request.text, deps.catalog)
    reply = router.switch_reply(intent, deps.catalog, request)
    if reply is not None:
        await ack(text=reply.text, blocks=reply.blocks_json(), response_type="ephemeral")
        return
    await ack()
    assert not isinstance(intent, CommandError)  # errors always have an immediate reply
    router.hand_off_switch(deps, intent, request,
                           report_failed_handoff(deps, request.response_url))
