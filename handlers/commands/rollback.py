"""`/rollback …`: parse, answer at once if no I/O is needed, else ack and hand off."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import SlashCommand
from bot.intents import parse_command
from bot.messages.base import ephemeral_error


async def rollback_command(ack: AsyncAck, command: dict[str, Any], context: Any) -> None:
    deps = from_context(context)
    request = SlashCommand.from_payload(command)
    intent = parse_command(request.text, deps.catalog)
    reply = router.immediate_reply(intent, deps.catalog)
    if reply is not None:
        await ack(text=reply.text, blocks=reply.blocks_json(), response_type="ephemeral")
        return
    await ack()

    async def tell_user(exc: BaseException) -> None:
        await deps.slack.respond(request.response_url, ephemeral_error(
            "rollbot could not queue that request (its database is unreachable).",
            "Nothing was changed. Try again in a minute."))

    assert not isinstance(intent, type(None))
    deps.dispatcher.submit(
        router.hand_off_command(deps, intent, request),  # type: ignore[arg-type]
        on_error=tell_user, name="rollback-command")
