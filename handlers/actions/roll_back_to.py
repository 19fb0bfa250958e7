"""The "Roll back to this" button on a revision list: same flow as `/rollback <svc> <rev>`."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.inbound import ButtonClick
from handlers.handoff import report_failed_handoff


async def roll_back_to(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                       context: Any) -> None:
    await ack()
    deps = from_context(context)
    click = ButtonClick.from_body(body, action)
    routed = router.revision_button_intent(click, deps.catalog)
    if isinstance(routed, tuple):
        intent, command = routed
        router.hand_off_command(deps, intent, command,
                                report_failed_handoff(deps, click.response_url))
    else:
        deps.dispatcher.submit(deps.slack.respond(click.response_url, routed),
                               name="roll-back-to-refusal")
        service = (click.json_value() or {}).get("service")
        if (isinstance(service, str) and service in deps.catalog.services
                and not deps.catalog.is_incident_channel(click.channel_name)):
            deps.dispatcher.submit(router.audit_channel_refusal(
                deps, click.user_id, service, click.channel_name), name="audit")
