"""`/rollback verify <service>`: the whole verification on demand, without a
rollback (e.g. after a fix forward): immediate checks, metrics, logs, verdict."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.checks import CheckResult
from bot.deps import Deps
from bot.inbound import SlashCommand
from bot.judgement import compare, judge
from bot.measure import measure
from bot.messages.base import Message, ephemeral_error, mrkdwn_section, user_mention
from bot.messages.measurements import console_link, measurement_table, verdict_line
from bot.messages.thread import check_line
from bot.verification import checks_for, run_checks

log = logging.getLogger(__name__)


async def verify_now(deps: Deps, service: str, command: SlashCommand) -> None:
    svc = deps.catalog.services[service]
    title = (f"Verification of {service} ({svc.cloud_run_service}) requested by "
             f"{user_mention(command.user_id)}")
    try:
        thread_ts = await deps.slack.post(command.channel_id, Message(
            text=title, blocks=(mrkdwn_section(f"🔎 {title}"),)))
    except SlackApiError as exc:
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"rollbot could not post in this channel ({exc.response.get('error')}).",
            "Invite rollbot (`/invite @rollbot`) and try again."))
        return

    async def say(message: Message) -> None:
        try:
            await deps.slack.post(command.channel_id, message, thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning("verification line not posted: %s", exc.response.get("error"))

    async def on_result(result: CheckResult) -> None:
        await say(check_line(result))

    results = await run_checks(checks_for(svc), svc.verification, deps.http,
                               on_result=on_result)
    now = await measure(deps, service, "now", since=None)
    rows = compare(None, now, svc.verification)
    await say(measurement_table(service, now, rows, link=console_link(
        deps.catalog.gcp.project, deps.catalog.region_of(service),
        deps.catalog.services[service].cloud_run_service)))
    judgement = judge(all(r.ok for r in results), rows)
    unchecked = [] if results else ["No health checks are configured for this service."]
    await say(verdict_line(service, judgement, notes=[*unchecked, (
        f"Thresholds come from the services catalog (`services.{service}.verification`).")]))
    await deps.audit.record(actor=command.user_id, action="verify", service=service,
                            details={"verdict": judgement.verdict,
                                     "reasons": list(judgement.reasons)})
