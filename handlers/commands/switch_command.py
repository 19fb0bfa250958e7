"""What `/flag` and `/killswitch` share: parse with the command's parser, answer bad
input (and changes outside incident channels) on the ack, else ack and hand off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.catalog import Catalog
from bot.deps import from_context
from bot.inbound import SlashCommand
from bot.parsing import CommandError
from bot.switch_intents import SwitchIntent
from handlers.handoff import report_failed_handoff

Parser = Callable[[str, Catalog], SwitchIntent | CommandError]


async def answer(ack: AsyncAck, command: dict[str, Any], context: Any, parse: Parser) -> None:
    deps = from_context(context)
    request = SlashCommand.from_payload(command)
    intent = parse(request.text, deps.catalog)
    reply = router.switch_reply(intent, deps.catalog, request)
    if reply is not None:
        await ack(text=reply.text, blocks=reply.blocks_json(), response_type="ephemeral")
        return
    await ack()
    assert not isinstance(intent, CommandError)  # errors always have an immediate reply
    router.hand_off_switch(deps, intent, request,
                           report_failed_handoff(deps, request.response_url))
