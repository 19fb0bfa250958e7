"""Read-only views of a service's configuration, answered ephemerally:
`/rollback env <service>` (the keys whose value differs across the last revisions),
`/rollback env <service> <KEY>` (KEY in each revision) and `/rollback diff <service>
<revision>` (what going back to a revision brings back). Values are masked
(`bot.masking`); a secret reference is shown as `secret:NAME@version`."""

from __future__ import annotations

import asyncio
import logging

from bot.config_diff import diff_configs
from bot.deps import Deps
from bot.inbound import SlashCommand
from bot.masking import Masker
from bot.messages.base import ephemeral_error
from bot.messages.config import diff_message, env_key_message, env_keys_message
from integrations.cloud_run import RevisionConfig
from integrations.google_retry import GoogleCallError

log = logging.getLogger(__name__)

SHOWN_REVISIONS = 10


async def _configs(deps: Deps, service: str) -> list[RevisionConfig]:
    """The last revisions' configs, newest first."""
    svc, region = deps.catalog.services[service], deps.catalog.region_of(service)
    revisions = await deps.cloud_run.list_revisions(svc.cloud_run_service, region,
                                                    limit=SHOWN_REVISIONS)
    return list(await asyncio.gather(*(
        deps.cloud_run.get_revision_config(svc.cloud_run_service, region, rev.name)
        for rev in revisions)))


async def _refused(deps: Deps, command: SlashCommand, service: str, exc: GoogleCallError,
                   what: str) -> None:
    log.warning("%s of %s failed: %s", what, service, exc.kind)
    reach = "Couldn't reach Cloud Run" if exc.transient else "Cloud Run refused"
    await deps.slack.respond(command.response_url, ephemeral_error(
        f"{reach} to read {what} of `{service}`: {exc.message}",
        "Nothing was changed. Try again in a minute."))


def _masker(deps: Deps) -> Masker:
    return Masker(deps.catalog.masking.secret_env_patterns)


async def show_env(deps: Deps, service: str, key: str | None, command: SlashCommand) -> None:
    try:
        configs = await _configs(deps, service)
    except GoogleCallError as exc:
        await _refused(deps, command, service, exc, "the env")
        return
    if key is None:
        message = env_keys_message(service, configs, _masker(deps))
    elif not any(c.env_value(key) for c in configs):
        known = sorted({e.name for c in configs for e in c.env})
        message = ephemeral_error(
            f"No revision of `{service}` has an env var `{key}`.",
            "Its keys: " + (", ".join(f"`{k}`" for k in known) or "none") + ".")
    else:
        message = env_key_message(service, key, configs, _masker(deps))
    await deps.slack.respond(command.response_url, message)


async def show_diff(deps: Deps, service: str, revision: str, command: SlashCommand) -> None:
    svc, region = deps.catalog.services[service], deps.catalog.region_of(service)
    try:
        snapshot = await deps.cloud_run.read_service(svc.cloud_run_service, region)
        serving_name = max(snapshot.state.serving().items(), key=lambda kv: kv[1])[0]
        serving, other = await asyncio.gather(
            deps.cloud_run.get_revision_config(svc.cloud_run_service, region, serving_name),
            deps.cloud_run.get_revision_config(svc.cloud_run_service, region, revision))
    except GoogleCallError as exc:
        if exc.kind == "not_found":
            await deps.slack.respond(command.response_url, ephemeral_error(
                f"Revision `{revision}` does not exist in `{svc.cloud_run_service}`.",
                f"`/rollback {service}` lists the revisions."))
            return
        await _refused(deps, command, service, exc, "the revisions")
        return
    differences = diff_configs(serving, other, _masker(deps))
    await deps.slack.respond(command.response_url,
                             diff_message(service, serving.revision, revision, differences))
