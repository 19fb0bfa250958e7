"""An approver's override of a blocked plan, end to end: the Override blocker button
opens a modal (views.open from the click's trigger id) that lists the blockers and asks
why; the reason is audited (`blocker_overridden`) and announced; the card then offers
Confirm, whose rules still apply. The requester and non-approvers cannot override."""

from __future__ import annotations

import asyncio
import json

from bot.changes.model import State
from integrations.emulators.slack import SlackCall
from tests.e2e.conftest import RunningBot
from tests.e2e.test_blockers import blocking_bot  # noqa: F401 - the fixture
from tests.e2e.test_rollback_flow import ALICE

BOB, DAVE = "U0BOB", "U0DAVE"
OVERRIDE = "rollback.override"
REASON = "Security signed off: the CVE needs a header we do not send"


def _text(call: SlackCall) -> str:
    return str(call.args.get("text", "")) + json.dumps(call.args.get("blocks", []),
                                                       ensure_ascii=False)


async def _blocked_card(bot: RunningBot) -> SlackCall:
    slack = bot.world.slack
    await slack.send_command(bot.events_url, "api 00013-ghi", **ALICE)
    return await slack.wait_for("chat.postMessage", lambda c: c.http_status == 200
                                and "Blocked" in _text(c), timeout=10)


async def _click(bot: RunningBot, card: SlackCall, action: str, user: str) -> None:
    result = await bot.world.slack.click(bot.events_url, action_id=action, user_id=user,
                                         channel_id="C0INCIDENT",
                                         message_ts=card.response["ts"])
    assert result.status == 200


async def _modal(bot: RunningBot, user: str) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not bot.world.slack.open_views(user):
        assert loop.time() < deadline, "no modal opened"
        await asyncio.sleep(0.02)
    return bot.world.slack.open_views(user)[-1]


async def test_an_approver_overrides_with_a_reason_then_confirm_rules_apply(
        blocking_bot: RunningBot) -> None:  # noqa: F811
    slack = blocking_bot.world.slack
    card = await _blocked_card(blocking_bot)
    await _click(blocking_bot, card, OVERRIDE, BOB)
    modal = await _modal(blocking_bot, BOB)
    listed = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "Old version has a known security vulnerability (vulnerable image)" in listed
    assert "Secrets were rotated" in listed and "the partner webhook URL changed" in listed

    short = await slack.submit_view(blocking_bot.events_url, user_id=BOB,
                                    values={"override.reason_input": "because"})
    assert short.view_errors and "at least 10 characters" in short.view_errors[
        "override.reason"]
    assert slack.open_views(BOB)  # still open, the error under the input

    done = await slack.submit_view(blocking_bot.events_url, user_id=BOB,
                                   values={"override.reason_input": REASON})
    assert done.status == 200 and done.view_errors is None and not slack.open_views(BOB)
    announced = await slack.wait_for("chat.postMessage", lambda c: "overrode the blockers"
                                     in _text(c), timeout=10)
    assert REASON in _text(announced) and "thread_ts" not in announced.args  # top level
    updated = await slack.wait_for("chat.update", lambda c: c.args.get("ts") ==
                                   card.response["ts"] and "rollback.confirm" in _text(c),
                                   timeout=10)
    assert "Blockers overridden by <@U0BOB>" in _text(updated)
    [change] = await blocking_bot.runtime.deps.changes.history("api", limit=1)
    [event] = [e for e in await blocking_bot.runtime.deps.audit.for_change(change.id)
               if e.action == "blocker_overridden"]
    assert event.actor == BOB and event.outcome == "ok"
    assert event.details["reason"] == REASON and len(event.details["blockers"]) >= 3

    await _click(blocking_bot, card, "rollback.confirm", ALICE["user_id"])  # own request
    await slack.wait_for("response_url", lambda c: "second person" in _text(c), timeout=10)
    await _click(blocking_bot, card, "rollback.confirm", BOB)
    await slack.wait_for("chat.postMessage", lambda c: "Initiating rollback" in _text(c),
                         timeout=10)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while blocking_bot.world.world.serving("medicalcor-api") != {
            "medicalcor-api-00013-ghi": 100}:
        assert loop.time() < deadline, "the overridden rollback did not run"
        await asyncio.sleep(0.05)


async def test_the_requester_and_non_approvers_cannot_override(
        blocking_bot: RunningBot) -> None:  # noqa: F811
    slack = blocking_bot.world.slack
    slack.add_user(DAVE, "dave", "Dave Non-Approver")
    card = await _blocked_card(blocking_bot)
    await _click(blocking_bot, card, OVERRIDE, ALICE["user_id"])
    await slack.wait_for("response_url", lambda c: "can't override" in _text(c), timeout=10)
    await _click(blocking_bot, card, OVERRIDE, DAVE)
    await slack.wait_for("response_url", lambda c: "Only approvers" in _text(c), timeout=10)
    assert not slack.calls_to("views.open")
    [change] = await blocking_bot.runtime.deps.changes.history("api", limit=1)
    assert change.state == State.PROPOSED
    denied = [e for e in await blocking_bot.runtime.deps.audit.for_change(change.id)
              if e.action == "blocker_overridden"]
    assert [e.outcome for e in denied] == ["denied", "denied"]


async def test_a_forged_submission_by_the_requester_is_refused(
        blocking_bot: RunningBot) -> None:  # noqa: F811
    """Someone who got hold of the form (or forged its payload) as the requester:
    the job checks again and changes nothing."""
    slack = blocking_bot.world.slack
    card = await _blocked_card(blocking_bot)
    await _click(blocking_bot, card, OVERRIDE, BOB)
    modal = await _modal(blocking_bot, BOB)
    blocking_bot.world.slack.api.views.open[modal["id"]]["user_id"] = ALICE["user_id"]
    await slack.submit_view(blocking_bot.events_url, user_id=ALICE["user_id"],
                            values={"override.reason_input": REASON})
    await slack.wait_for("chat.postEphemeral", lambda c: "can't override" in _text(c),
                         timeout=10)
    [change] = await blocking_bot.runtime.deps.changes.history("api", limit=1)
    assert change.plan.get("override") is None
