"""`/rollback secret NAME [VERSION]` after the ack: the versions and who reads which
(ephemeral), or a secret rollback proposed through the one change flow, anchored on
the first catalog service that reads the secret (its thread, its slot)."""

from __future__ import annotations

import logging

from bot.changes.kind import ChangeRequest
from bot.changes.kinds.secret import subject_of
from bot.changes.kinds.secret_steps import refused
from bot.deps import Deps
from bot.ids import KindName
from bot.inbound import SlashCommand
from bot.messages.base import ephemeral_error
from bot.messages.secrets import secret_versions_message
from bot.secret_usage import secret_uses, services_using
from bot.workflow import propose
from integrations.google_retry import GoogleCallError

log = logging.getLogger(__name__)


async def secret_command(deps: Deps, secret: str, version: str | None, dry_run: bool,
                         command: SlashCommand) -> None:
    if deps.secrets is None:
        await deps.slack.respond(command.response_url, ephemeral_error(
            "Secret Manager is not available here.", "Nothing was changed."))
        return
    try:
        versions = await deps.secrets.list_versions(secret)  # an unknown secret stops here
        if version is None:
            uses = await secret_uses(deps, secret, versions)
            await deps.slack.respond(command.response_url,
                                     secret_versions_message(secret, versions, uses))
            return
        users = await services_using(deps, secret)
    except GoogleCallError as exc:
        log.warning("secret %s: %s", secret, exc.kind)
        problem = refused(exc, secret, deps.catalog.gcp.project)
        await deps.slack.respond(command.response_url,
                                 ephemeral_error(problem.problem, problem.hint))
        return
    if not users:
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"No service in the catalog reads secret `{secret}`.",
            f"Nothing to pin. `/rollback secret {secret}` shows its versions."))
        return
    request = ChangeRequest(KindName.SECRET.value, users[0][0],
                            {"secret": secret, "version": version}, dry_run=dry_run,
                            subject=subject_of(secret))
    await propose.propose(deps, request, command)
