"""Step 1: a change request (`/rollback api 00014-def`, an Undo click, …) → its kind's
plan → a plan card in the channel (a blocked one too: no Confirm, an approver's
override). With --dry-run, or when there is nothing to do (the target serves already),
the card goes to the requester only and nothing is proposed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import authz
from bot.changes.kind import ChangeKind, ChangeRequest, PlannedChange
from bot.changes.model import Change, State
from bot.changes.registry import kind_named
from bot.changes.store import ActiveChangeExists
from bot.deps import Deps, group_members
from bot.inbound import SlashCommand
from bot.jobs_names import BASELINE
from bot.messages import refusals
from bot.messages.base import ephemeral_error
from bot.messages.plan import plan_card
from bot.plans import Plan, PlanError
from bot.workflow import one_person
from bot.workflow.rules import rules_for

log = logging.getLogger(__name__)

PROPOSAL_TTL_SECONDS = 30 * 60  # an unanswered plan card stops holding the service's slot


async def propose(deps: Deps, request: ChangeRequest, command: SlashCommand) -> None:
    if await _repeated(deps, command):
        log.info("dropping repeated delivery of command %s", command.trigger_id)
        return
    if not await _may_request(deps, request, command):
        return
    # Every kind so far changes one service: its subject. The unique index met when
    # the change is created stays the guard against two requests racing.
    if not request.dry_run and await _refused_as_busy(deps, request.subject or request.service,
                                                      command):
        return
    kind = kind_named(request.kind)
    planned = await kind.plan(deps, request)
    if isinstance(planned, PlanError):
        await deps.slack.respond(command.response_url, refusals.plan_error(planned.problem,
                                                                            planned.hint))
        return
    if not await _others_allowed(deps, request, planned.plan, command):
        return
    if request.undo_of is not None:
        planned = await _say_undo(deps, planned, request.undo_of)
    if request.dry_run or planned.plan.pointless:
        await _preview(deps, kind, planned, request, command)
        return
    await _open_proposal(deps, planned, request, command)


async def _may_request(deps: Deps, request: ChangeRequest, command: SlashCommand,
                       plan: Plan | None = None) -> bool:
    """The requester rules of the service (or the kind's own group), and once the plan
    is known, of every service it touches; said if not."""
    rules = rules_for(deps.catalog, request.kind, request.service, request.args, plan)
    if rules is None:
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"`{request.service or request.subject}` is not in the catalog.",
            "Nothing was changed."))
        return False
    for label, each in rules:
        decision = await authz.may_request(each, command.user_id,
                                           partial(group_members, deps))
        if not decision.allowed:
            await deps.audit.record(actor=command.user_id, action="propose",
                                    service=request.service, outcome="denied",
                                    details={"reason": decision.reason})
            await deps.slack.respond(command.response_url, refusals.not_a_requester(
                label, list(each.requesters)))
            return False
    return True


async def _others_allowed(deps: Deps, request: ChangeRequest, plan: Plan,
                          command: SlashCommand) -> bool:
    """A change that touches more services than its own (a secret pinned in each) needs
    the requester allowed, and no other change under way, in every one of them."""
    if not plan.services:
        return True
    if not await _may_request(deps, request, command, plan):
        return False
    for name in plan.services:
        if name == request.service and not request.subject:
            continue  # checked already
        if not request.dry_run and await _refused_as_busy(deps, name, command):
            return False
    return True


def _audited(kind: str, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a proposal: the plan's words (masked by its kind), never
    the spec, which may hold a value typed for a secret-looking env var."""
    return {"kind": kind, "headline": plan.headline, "changes": list(plan.changes),
            "before": before, **({"blockers": [b.text for b in plan.blockers]}
                                 if plan.blocked else {})}


async def _say_undo(deps: Deps, planned: PlannedChange, undo_of: int) -> PlannedChange:
    """An undo says what it undoes on its card, and so does an undo of an undo."""
    undone = await deps.changes.get(undo_of)
    note = f"This undoes change #{undo_of}"
    if undone is not None and undone.spec.get("undo_of"):
        note += f", itself an undo of #{undone.spec['undo_of']} (an undo of an undo)"
    plan = dataclasses.replace(planned.plan, warnings=(*planned.plan.warnings, note + "."))
    return dataclasses.replace(planned, plan=plan)


async def _preview(deps: Deps, kind: ChangeKind, planned: PlannedChange,
                   request: ChangeRequest, command: SlashCommand) -> None:
    """Nothing to confirm: a dry run (with the outside system's own validation), or a
    plan with nothing to do (the target serves already), shown to the requester only."""
    plan = planned.plan
    validation = await kind.dry_run(deps, planned) if request.dry_run else None
    await deps.audit.record(
        actor=command.user_id, action="dry_run" if request.dry_run else "propose",
        service=request.service, outcome="ok" if request.dry_run else "denied",
        details={"kind": request.kind, "headline": plan.headline, "validation": validation,
                 "blockers": [b.text for b in plan.blockers]})
    await deps.slack.respond(command.response_url, plan_card(
        plan, None, dry_run=request.dry_run, validation=validation))


async def _refused_as_busy(deps: Deps, service: str, command: SlashCommand) -> bool:
    """One rollback per service at a time: say so at once, before reading Cloud
    Run for a plan nobody could confirm. (The partial unique index, met in
    _open_proposal, stays the guard against two requests racing.)"""
    active = (await deps.changes.active_for(service)
              or await deps.changes.active_touching(service))
    if active is None:
        return False
    age = (dt.datetime.now(dt.UTC) - active.created_at).total_seconds()
    if active.state == State.PROPOSED and age > PROPOSAL_TTL_SECONDS:
        return False  # about to expire in _open_proposal: not in the way
    await _say_busy(deps, command, active)
    return True


async def _say_busy(deps: Deps, command: SlashCommand, active: Change) -> None:
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


async def _open_proposal(deps: Deps, planned: PlannedChange, request: ChangeRequest,
                         command: SlashCommand) -> None:
    await deps.changes.expire_proposals(PROPOSAL_TTL_SECONDS)
    plan = planned.plan
    # The request rides with the spec: "Plan again" asks the kind for the same thing.
    spec = {**planned.spec, "request": request.args,
            **({"undo_of": request.undo_of} if request.undo_of else {})}
    try:
        async with deps.pool.connection() as conn, conn.transaction():
            change = await deps.changes.create(
                conn=conn, kind=request.kind, subject=planned.subject, service=plan.service,
                spec=spec, before=planned.before, requested_by=command.user_id,
                channel_id=command.channel_id, plan=plan.to_json())
            await deps.audit.record(
                conn=conn, actor=command.user_id, action="propose", service=plan.service,
                change_id=change.id,
                details=_audited(request.kind, plan, planned.before))
            # The baseline (what the service looks like before any change) starts with
            # the change, before its card is out: a Confirm may come the moment it is.
            await deps.jobs.configure_task(BASELINE, connection=conn).defer_async(
                change_id=change.id)
    except ActiveChangeExists as exc:
        await _say_busy(deps, command, exc.active)
        return
    try:
        card_ts = await deps.slack.post(command.channel_id, plan_card(plan, change))
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown error"))
        await deps.changes.transition(change.id, State.PROPOSED, State.FAILED,
                                      error=f"could not post the plan card: {error}")
        await deps.slack.respond(command.response_url, ephemeral_error(
            f"rollbot could not post the plan card in this channel ({error}).",
            "Invite rollbot to the channel (`/invite @rollbot`) and try again. "
            "Nothing was changed."))
        return
    posted = await deps.changes.set_fields(change.id, card_ts=card_ts)
    if plan.immediate and posted is not None:
        await one_person.confirm_own(deps, posted)
