"""From an intent to what happens next: an immediate ephemeral answer (no I/O,
so it can ride on the ack) or a durable hand-off to a procrastinate job."""

from __future__ import annotations

from bot.catalog import Catalog
from bot.deps import Deps
from bot.inbound import ButtonClick, SlashCommand
from bot.intents import (
    CommandError,
    HelpIntent,
    HistoryIntent,
    Intent,
    ListRevisionsIntent,
    RollbackIntent,
)
from bot.jobs import LIST_REVISIONS
from bot.messages.base import Message, ephemeral_error
from bot.messages.help import help_message


def not_yet_available(catalog: Catalog, service: str, revision: str) -> Message:
    svc = catalog.services[service]
    region = catalog.region_of(service)
    return ephemeral_error(
        f"Rollbacks from Slack are not available yet (asked: `{service}` → `{revision}`).",
        "Nothing was changed. By hand, per the runbook: "
        f"`gcloud run services update-traffic {svc.cloud_run_service} --region={region} "
        f"--to-revisions={revision}=100`",
    )


def immediate_reply(intent: Intent | CommandError, catalog: Catalog) -> Message | None:
    """The answer when it needs no I/O; None when a job must do the work."""
    if isinstance(intent, CommandError):
        return ephemeral_error(intent.problem, intent.hint)
    if isinstance(intent, HelpIntent):
        return help_message(catalog)
    if isinstance(intent, RollbackIntent):
        return not_yet_available(catalog, intent.service, intent.revision)
    if isinstance(intent, HistoryIntent):
        return ephemeral_error("`/rollback history` is not available yet.",
                               "It arrives with rollbacks from Slack.")
    return None


async def hand_off_command(deps: Deps, intent: Intent, command: SlashCommand) -> None:
    """Defer the job that answers `command` (runs after the ack)."""
    if isinstance(intent, ListRevisionsIntent):
        await deps.jobs.configure_task(LIST_REVISIONS).defer_async(
            service=intent.service, command=dict(command.as_job_args()))
        return
    raise ValueError(f"no job for {type(intent).__name__}")


def click_reply(click: ButtonClick, catalog: Catalog) -> Message:
    """The answer to a revision-list button (the rollback flow comes next)."""
    value = click.json_value() or {}
    service, revision = value.get("service"), value.get("revision")
    if not isinstance(service, str) or service not in catalog.services or not isinstance(
            revision, str):
        return ephemeral_error("That button is out of date or malformed.",
                               "Run `/rollback <service>` again for a fresh list.")
    return not_yet_available(catalog, service, revision)
