"""Buttons that propose another change from a finished one: Undo (its kind's exact
inverse), Restore latest routing (after a change pinned the service) and Plan again
(after a plan went out of date), and a blocker's remedy (e.g. re-enable the old secret
version first). Each is the same request as a typed command: the
same requester rules, a new plan card in the same channel, the same confirm rules."""

from __future__ import annotations

from functools import partial

from bot import authz
from bot.changes.kind import ChangeRequest
from bot.changes.model import Change, State
from bot.changes.registry import kind_named, restore_latest_request
from bot.deps import Deps, group_members
from bot.ids import FollowUpAction
from bot.inbound import ButtonClick, SlashCommand
from bot.messages.base import ephemeral_error
from bot.plans import Plan
from bot.workflow import propose
from bot.workflow.posting import refresh_card
from bot.workflow.rules import rules_of_change


async def follow_up(deps: Deps, click: ButtonClick, change_id: int | None) -> None:
    change = await deps.changes.get(change_id) if change_id is not None else None
    if change is None or rules_of_change(deps.catalog, change) is None:
        await deps.slack.respond(click.response_url, ephemeral_error(
            "That button is out of date: rollbot has no such change.",
            "Start again with `/rollback <service> <revision>`."))
        return
    action = FollowUpAction(click.action_id)
    if action == FollowUpAction.UNDO:
        undo = kind_named(change.kind).undo(change)
        if undo is None:
            await deps.slack.respond(click.response_url, ephemeral_error(
                f"Change #{change.id} changed nothing, so there is nothing to undo.",
                "`/rollback history <service>` shows what each change did."))
            return
        request = undo
    elif action == FollowUpAction.RESTORE_LATEST:
        request = restore_latest_request(change.service)
    elif action == FollowUpAction.REMEDY:
        remedy = Plan.from_json(change.plan).remedy
        if not remedy:
            await deps.slack.respond(click.response_url, ephemeral_error(
                "That button is out of date: the plan has nothing to do first.",
                "Nothing was changed."))
            return
        request = ChangeRequest(str(remedy["kind"]), str(remedy["service"]),
                                dict(remedy["args"]), subject=remedy.get("subject"))
        await _supersede(deps, click, change)
    else:
        request = ChangeRequest(change.kind, change.service,
                                dict(change.spec.get("request") or {}),
                                subject=change.subject if change.subject != change.service
                                else None)
    command = SlashCommand(
        user_id=click.user_id, channel_id=click.channel_id, channel_name=click.channel_name,
        text=f"{action.value} #{change.id}", response_url=click.response_url,
        trigger_id=f"click:{click.action_ts}:{click.user_id}")
    await propose.propose(deps, request, command)



SUPERSEDED = ("Cancelled: doing first what the blocker asks (a new card below). Propose "
              "the rollback again once that is done; its plan is then read afresh.")


async def _supersede(deps: Deps, click: ButtonClick, change: Change) -> None:
    """A blocked proposal whose remedy was chosen is cancelled, if the clicker may
    cancel it: it would hold the service's slot, and its plan will be stale once the
    remedy is done."""
    if change.state != State.PROPOSED:
        return
    for _, rules in rules_of_change(deps.catalog, change) or []:
        decision = await authz.may_cancel(rules, click.user_id, change.requested_by,
                                          partial(group_members, deps))
        if not decision.allowed:
            return  # left as it is: its Cancel is on the card
    async with deps.pool.connection() as conn, conn.transaction():
        cancelled = await deps.changes.transition(change.id, State.PROPOSED,
                                                  State.CANCELLED, conn=conn,
                                                  cancelled_by=click.user_id)
        if cancelled is not None:
            await deps.audit.record(conn=conn, actor=click.user_id, action="cancel",
                                    service=change.service, change_id=change.id,
                                    details={"superseded_by": "remedy"})
    if cancelled is not None:
        await refresh_card(deps, cancelled, final_note=SUPERSEDED)
