"""`/rollback <service>`: read revisions from Cloud Run and answer ephemerally."""

from __future__ import annotations

import logging

from bot.deps import Deps
from bot.inbound import SlashCommand
from bot.messages.base import ephemeral_error
from bot.messages.revisions import revisions_message
from integrations.google_retry import GoogleCallError

log = logging.getLogger(__name__)


async def show_revisions(deps: Deps, service: str, command: SlashCommand) -> None:
    svc = deps.catalog.services[service]
    region = deps.catalog.region_of(service)
    try:
        state = await deps.cloud_run.get_service(svc.cloud_run_service, region)
        revisions = await deps.cloud_run.list_revisions(svc.cloud_run_service, region, limit=10)
    except GoogleCallError as exc:
        log.warning("listing revisions of %s failed: %s", service, exc.kind)
        reach = "Couldn't reach Cloud Run" if exc.transient else "Cloud Run refused"
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"{reach} to list revisions of `{service}` ({svc.cloud_run_service}): {exc.message}",
            "Nothing was changed. Try again in a minute, or use "
            f"`gcloud run revisions list --service={svc.cloud_run_service} --region={region}`.",
        ))
        return
    await deps.slack.respond(
        command.response_url, revisions_message(service, region, state, revisions))
