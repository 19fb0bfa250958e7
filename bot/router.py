"""From an intent to what happens next: an immediate ephemeral answer (no I/O,
so it can ride on the ack) or a durable hand-off to a procrastinate job (queued
without waiting; written in the next batch, see bot/defer.py)."""

from __future__ import annotations

import logging

from bot import authz
from bot.catalog import Catalog
from bot.changes.kind import ChangeRequest
from bot.defer import OnFailure
from bot.deps import Deps
from bot.ids import KindName
from bot.inbound import ButtonClick, OverrideSubmission, SlashCommand
from bot.intents import (
    ChangeIntent,
    CommandError,
    DiffIntent,
    EnvIntent,
    HelpIntent,
    HistoryIntent,
    Intent,
    ListRevisionsIntent,
    SecretIntent,
    VerifyIntent,
)
from bot.jobs_names import (
    CANCEL,
    CONFIRM,
    FINAL_STEP,
    FOLLOW_UP,
    HISTORY,
    LIST_REVISIONS,
    OVERRIDE,
    OVERRIDE_FORM,
    PROPOSE,
    ROLLOUT_CONTROL,
    SHOW_DIFF,
    SHOW_ENV,
    SHOW_SECRET,
    SWITCHES,
    VERIFY_NOW,
)
from bot.messages import refusals
from bot.messages.base import Message, ephemeral_error
from bot.messages.help import help_message
from bot.switch_intents import FlagChangeIntent, SwitchChangeIntent, SwitchIntent

log = logging.getLogger(__name__)


def immediate_reply(intent: Intent | CommandError, catalog: Catalog,
                    command: SlashCommand) -> Message | None:
    """The answer when it needs no I/O; None when a job must do the work."""
    if isinstance(intent, CommandError):
        return ephemeral_error(intent.problem, intent.hint)
    if isinstance(intent, HelpIntent):
        return help_message(catalog)
    changes = ((isinstance(intent, ChangeIntent) and not intent.request.dry_run)
               or (isinstance(intent, SecretIntent) and intent.version and not intent.dry_run))
    if changes:
        channel = authz.channel_allowed(catalog, command.channel_name)
        if not channel.allowed:
            return refusals.not_incident_channel(catalog.slack.incident_channel_pattern)
    return None


async def audit_channel_refusal(deps: Deps, user_id: str, service: str,
                                channel_name: str) -> None:
    """Refusals by the channel rule ride on the ack; their audit row follows it."""
    await deps.audit.record(
        actor=user_id, action="propose", service=service, outcome="denied",
        details={"reason": f"channel #{channel_name} does not match "
                           f"{deps.catalog.slack.incident_channel_pattern}"})


def hand_off_command(deps: Deps, intent: Intent, command: SlashCommand,
                     on_failure: OnFailure) -> None:
    """Queue the job that answers `command` (it runs after the ack); a hand-off that
    cannot be written is reported to `on_failure`."""
    args = command.as_job_args()
    if isinstance(intent, ListRevisionsIntent):
        deps.handoffs.hand_off(LIST_REVISIONS, on_failure=on_failure,
                               service=intent.service, command=args)
    elif isinstance(intent, VerifyIntent):
        deps.handoffs.hand_off(VERIFY_NOW, on_failure=on_failure,
                               service=intent.service, command=args)
    elif isinstance(intent, HistoryIntent):
        deps.handoffs.hand_off(HISTORY, on_failure=on_failure,
                               service=intent.service, command=args)
    elif isinstance(intent, EnvIntent):
        deps.handoffs.hand_off(SHOW_ENV, on_failure=on_failure, service=intent.service,
                               key=intent.key, command=args)
    elif isinstance(intent, DiffIntent):
        deps.handoffs.hand_off(SHOW_DIFF, on_failure=on_failure, service=intent.service,
                               revision=intent.revision, command=args)
    elif isinstance(intent, SecretIntent):
        deps.handoffs.hand_off(SHOW_SECRET, on_failure=on_failure, secret=intent.secret,
                               version=intent.version, dry_run=intent.dry_run, command=args)
    elif isinstance(intent, ChangeIntent):
        request = intent.request
        deps.handoffs.hand_off(PROPOSE, on_failure=on_failure, service=request.service,
                               kind=request.kind, args=request.args, dry_run=request.dry_run,
                               command=args)
    else:
        raise ValueError(f"no job for {type(intent).__name__}")


def revision_button_intent(click: ButtonClick, catalog: Catalog
                           ) -> tuple[ChangeIntent, SlashCommand] | Message:
    """A "Roll back to this" click is the same request as `/rollback <svc> <rev>`."""
    value = click.json_value() or {}
    service, revision = value.get("service"), value.get("revision")
    svc = catalog.services.get(service) if isinstance(service, str) else None
    if (svc is None or not isinstance(revision, str) or not isinstance(service, str)
            or not revision.startswith(svc.cloud_run_service + "-")):
        return ephemeral_error("That button is out of date or malformed.",
                               "Run `/rollback <service>` again for a fresh list.")
    command = SlashCommand(
        user_id=click.user_id, channel_id=click.channel_id, channel_name=click.channel_name,
        text=f"{service} {revision}", response_url=click.response_url,
        trigger_id=f"click:{click.action_ts}:{click.user_id}")
    if not catalog.is_incident_channel(click.channel_name):
        return refusals.not_incident_channel(catalog.slack.incident_channel_pattern)
    return ChangeIntent(ChangeRequest(KindName.TRAFFIC.value, service,
                                      {"traffic": {revision: 100}})), command


def hand_off_decision(deps: Deps, click: ButtonClick, confirm: bool,
                      on_failure: OnFailure) -> None:
    deps.handoffs.hand_off(CONFIRM if confirm else CANCEL, on_failure=on_failure,
                           click=click.as_job_args(), change_id=click.change_id())


def hand_off_gradual(deps: Deps, click: ButtonClick, on_failure: OnFailure) -> None:
    """Gradual on a plan card: Confirm, as a gradual rollout."""
    deps.handoffs.hand_off(CONFIRM, on_failure=on_failure, click=click.as_job_args(),
                           change_id=click.change_id(), run_as=KindName.GRADUAL.value)


def hand_off_rollout_control(deps: Deps, click: ButtonClick, on_failure: OnFailure) -> None:
    """Promote now, Abort, Pause or Resume on a running rollout."""
    deps.handoffs.hand_off(ROLLOUT_CONTROL, on_failure=on_failure, click=click.as_job_args(),
                           change_id=click.change_id())


def follow_up_refusal(click: ButtonClick, catalog: Catalog) -> Message | None:
    """Undo, Restore latest and Plan again propose a change: only in incident channels."""
    if not catalog.is_incident_channel(click.channel_name):
        return refusals.not_incident_channel(catalog.slack.incident_channel_pattern)
    return None


def switch_reply(intent: SwitchIntent | CommandError, catalog: Catalog,
                 command: SlashCommand) -> Message | None:
    """`/flag` and `/killswitch`: bad input, and changes outside incident channels
    (lists and status work anywhere), answered on the ack."""
    if isinstance(intent, CommandError):
        return ephemeral_error(intent.problem, intent.hint)
    changes = (isinstance(intent, FlagChangeIntent | SwitchChangeIntent)
               and not intent.dry_run)
    if changes and not authz.channel_allowed(catalog, command.channel_name).allowed:
        return refusals.not_incident_channel(catalog.slack.incident_channel_pattern)
    return None


def hand_off_switch(deps: Deps, intent: SwitchIntent, command: SlashCommand,
                    on_failure: OnFailure) -> None:
    """The job that answers a `/flag` or `/killswitch` command."""
    fields = dict(vars(intent))
    deps.handoffs.hand_off(SWITCHES, on_failure=on_failure, intent=type(intent).__name__,
                           fields=fields, command=command.as_job_args())


def hand_off_override_form(deps: Deps, click: ButtonClick, on_failure: OnFailure) -> None:
    """Override blocker: the job checks who may, then opens the form (views.open)."""
    deps.handoffs.hand_off(OVERRIDE_FORM, on_failure=on_failure, click=click.as_job_args(),
                           change_id=click.change_id())


def hand_off_override(deps: Deps, submission: OverrideSubmission) -> None:
    """The override form, submitted: recorded, audited and announced by a job."""
    async def lost(exc: BaseException) -> None:
        log.error("override of change %s by %s could not be queued: %s",
                  submission.change_id, submission.user_id, type(exc).__name__)
    deps.handoffs.hand_off(OVERRIDE, on_failure=lost, submission=submission.as_job_args())


def hand_off_final_step(deps: Deps, click: ButtonClick, on_failure: OnFailure) -> None:
    """A held step's second confirmation (e.g. a secret rollback's "Disable version 7")."""
    deps.handoffs.hand_off(FINAL_STEP, on_failure=on_failure, click=click.as_job_args(),
                           change_id=click.change_id())


def hand_off_follow_up(deps: Deps, click: ButtonClick, on_failure: OnFailure) -> None:
    deps.handoffs.hand_off(FOLLOW_UP, on_failure=on_failure, click=click.as_job_args(),
                           change_id=click.change_id())
