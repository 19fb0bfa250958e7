"""Buttons that propose another change from a finished one: Undo (its kind's exact
inverse), Restore latest routing (after a change pinned the service) and Plan again
(after a plan went out of date), and a blocker's remedy (e.g. re-enable the old secret
version first). Each is the same request as a typed command: the
same requester rules, a new plan card in the same channel, the same confirm rules."""

from __future__ import annotations

from bot.changes.kind import ChangeRequest
from bot.changes.registry import kind_named, restore_latest_request
from bot.deps import Deps
from bot.ids import FollowUpAction
from bot.inbound import ButtonClick, SlashCommand
from bot.messages.base import ephemeral_error
from bot.plans import Plan
from bot.workflow import propose
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

