"""The "Roll back to this" button on a revision list."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import ButtonClick


async def roll_back_to(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                       context: Any) -> None:
    await ack()
    deps = from_context(context)
    click = ButtonClick.from_body(body, action)
    reply = router.click_reply(click, deps.catalog)
    deps.dispatcher.submit(deps.slack.respond(click.response_url, reply), name="roll-back-to")
