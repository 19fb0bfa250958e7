"""`/rollback …`: parse, answer at once if no I/O is needed, else ack and hand off."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import SlashCommand
from bot.intents import ChangeIntent, CommandError, SecretIntent, parse_command
from handlers.handoff import report_failed_handoff


async def rollback_command(ack: AsyncAck, command: dict[str, Any], context: Any) -> None:
    deps = from_context(context)
    request = SlashCommand.from_payload(command)
    intent = parse_command(request.text, deps.catalog)
    reply = router.immediate_reply(intent, deps.catalog, request)
    if reply is not None:
        await ack(text=reply.text, blocks=reply.blocks_json(), response_type="ephemeral")
        refused = (intent.request.service if isinstance(intent, ChangeIntent)
                   else f"secret:{intent.secret}" if isinstance(intent, SecretIntent) else None)
        if refused is not None:  # the only change replies here: the channel rule
            deps.dispatcher.submit(router.audit_channel_refusal(
                deps, request.user_id, refused, request.channel_name), name="audit")
        return
    await ack()
    assert not isinstance(intent, CommandError)  # errors always have an immediate reply
    router.hand_off_command(deps, intent, request,
                            report_failed_handoff(deps, request.response_url))
