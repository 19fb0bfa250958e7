"""Override blocker on a blocked plan card: an approver's form asking the reason."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import ButtonClick
from handlers.handoff import report_failed_handoff


async def override_blocker(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                           context: Any) -> None:
    await ack()
    deps = from_context(context)
    click = ButtonClick.from_body(body, action)
    router.hand_off_override_form(deps, click, report_failed_handoff(deps, click.response_url))
