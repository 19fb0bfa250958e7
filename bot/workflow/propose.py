"""Step 1: `/rollback api 00014-def` → a plan card in the channel (or, with
--dry-run, the same card ephemerally, changing nothing)."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial

from slack_sdk.errors import SlackApiError

from bot import authz
from bot.deps import Deps, group_members
from bot.inbound import SlashCommand
from bot.intents import RollbackIntent
from bot.jobs_names import BASELINE
from bot.messages import refusals
from bot.messages.base import ephemeral_error
from bot.messages.plan import plan_card
from bot.plans import Plan, PlanError, build_plan
from bot.rollbacks.model import Rollback, State
from bot.rollbacks.store import ActiveRollbackExists

log = logging.getLogger(__name__)

PROPOSAL_TTL_SECONDS = 30 * 60  # an unanswered plan card stops holding the service's slot


async def propose(deps: Deps, intent: RollbackIntent, command: SlashCommand) -> None:
    if await _repeated(deps, command):
        log.info("dropping repeated delivery of command %s", command.trigger_id)
        return
    service = deps.catalog.services[intent.service]
    members = partial(group_members, deps)
    decision = await authz.may_request(service, command.user_id, members)
    if not decision.allowed:
        await deps.audit.record(actor=command.user_id, action="propose", service=intent.service,
                                outcome="denied", details={"reason": decision.reason})
        await deps.slack.respond(command.response_url, refusals.not_a_requester(
            intent.service, service.requesters))
        return

    if not intent.dry_run and await _refused_as_busy(deps, intent.service, command):
        return
    plan = await build_plan(deps.catalog, deps.cloud_run, intent.service, intent.revision)
    if isinstance(plan, PlanError):
        await deps.slack.respond(command.response_url, refusals.plan_error(plan.problem,
                                                                            plan.hint))
        return
    if intent.dry_run or plan.blocked:
        # Nothing to confirm: show the plan to the requester only.
        await deps.audit.record(
            actor=command.user_id, action="dry_run" if intent.dry_run else "propose",
            service=intent.service, outcome="ok" if intent.dry_run else "denied",
            details={"target": plan.target.name,
                     "blockers": [b.text for b in plan.blockers]})
        await deps.slack.respond(command.response_url, plan_card(plan, None, dry_run=True))
        return
    await _open_proposal(deps, plan, command)


async def _refused_as_busy(deps: Deps, service: str, command: SlashCommand) -> bool:
    """One rollback per service at a time: say so at once, before reading Cloud
    Run for a plan nobody could confirm. (The partial unique index, met in
    _open_proposal, stays the guard against two requests racing.)"""
    active = await deps.rollbacks.active_for(service)
    if active is None:
        return False
    age = (dt.datetime.now(dt.UTC) - active.created_at).total_seconds()
    if active.state == State.PROPOSED and age > PROPOSAL_TTL_SECONDS:
        return False  # about to expire in _open_proposal: not in the way
    await _say_busy(deps, command, active)
    return True


async def _say_busy(deps: Deps, command: SlashCommand, active: Rollback) -> None:
    link = (await deps.slack.permalink(active.channel_id, active.card_ts)
            if active.card_ts else None)
    await deps.slack.respond(command.response_url, refusals.active_rollback_exists(active, link))


async def _repeated(deps: Deps, command: SlashCommand) -> bool:
    """Slack may deliver a slash command twice; the trigger id identifies it.

    Redis only de-duplicates: without it a retry would at worst meet the
    one-active-rollback rule, so a Redis outage must not stop rollbacks."""
    if not command.trigger_id:
        return False
    try:
        return not await deps.dedupe.first_time(f"command:{command.trigger_id}")
    except Exception as exc:
        log.warning("Redis unavailable for de-duplication (%s); going on without it",
                    type(exc).__name__)
        return False


async def _open_proposal(deps: Deps, plan: Plan, command: SlashCommand) -> None:
    await deps.rollbacks.expire_proposals(PROPOSAL_TTL_SECONDS)
    try:
        async with deps.pool.connection() as conn, conn.transaction():
            rollback = await deps.rollbacks.create(
                conn=conn, service=plan.service, cloud_run_service=plan.cloud_run_service,
                target_revision=plan.target.name, traffic_before=plan.current_traffic,
                requested_by=command.user_id, channel_id=command.channel_id,
                plan=plan.to_json())
            await deps.audit.record(
                conn=conn, actor=command.user_id, action="propose", service=plan.service,
                rollback_id=rollback.id,
                details={"target": plan.target.name, "traffic_before": plan.current_traffic})
    except ActiveRollbackExists as exc:
        await _say_busy(deps, command, exc.active)
        return
    try:
        card_ts = await deps.slack.post(command.channel_id, plan_card(plan, rollback))
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown error"))
        await deps.rollbacks.transition(rollback.id, State.PROPOSED, State.FAILED,
                                        error=f"could not post the plan card: {error}")
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"rollbot could not post the plan card in this channel ({error}).",
            "Invite rollbot to the channel (`/invite @rollbot`) and try again. "
            "Nothing was changed."))
        return
    await deps.rollbacks.set_fields(rollback.id, card_ts=card_ts)
    # The baseline is measured off the request's path (two scrapes take seconds).
    await deps.jobs.configure_task(BASELINE).defer_async(rollback_id=rollback.id)
