"""Undo, Restore latest routing and Plan again: each proposes a new change."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import ButtonClick
from handlers.handoff import report_failed_handoff


async def follow_up(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                    context: Any) -> None:
    await ack()
    deps = from_context(context)
    click = ButtonClick.from_body(body, action)
    refusal = router.follow_up_refusal(click, deps.catalog)
    if refusal is not None:
        deps.dispatcher.submit(deps.slack.respond(click.response_url, refusal),
                               name="follow-up-refusal")
        return
    router.hand_off_follow_up(deps, click, report_failed_handoff(deps, click.response_url))
