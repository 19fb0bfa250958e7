"""`/rollback secret`, end to end against the Cloud Run and Secret Manager emulators and
real Postgres: the versions and who reads them; the four steps in the runbook's order
with the second confirmation; a failure at step 2; Undo; and never a payload read."""

from __future__ import annotations

import asyncio
import json

import grpc

from bot.changes.model import Change, State
from integrations.emulators.google import methods
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import EmuEnvVar, EmuTrafficTarget
from tests.e2e.conftest import RunningBot
from tests.e2e.test_rollback_flow import ALICE, UPDATE_SERVICE


def _text(call: SlackCall) -> str:
    return str(call.args.get("text", "")) + json.dumps(call.args.get("blocks", []),
                                                       ensure_ascii=False)


def _posted(text: str):  # type: ignore[no-untyped-def]
    return lambda call: call.http_status == 200 and text in _text(call)

BOB = "U0BOB"
SECRET = "API_SECRET_KEY"
DISABLE = "rollback.final_step"
ACCESS = methods.ACCESS_SECRET_VERSION


def _state(bot: RunningBot, version: str) -> str:
    return bot.world.world.secrets[SECRET].versions[version].state


async def _change(bot: RunningBot, *states: State, within: float = 15) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await bot.runtime.deps.changes.history("api", limit=1)
        if found and found[0].state in states:
            return found[0]
        assert loop.time() < deadline, f"secret change stuck in {found and found[0].state}"
        await asyncio.sleep(0.05)


async def _card(bot: RunningBot, text: str = f"secret {SECRET} 1") -> SlackCall:
    # The fixture's serving revision is broken; a pin keeps its image, and so would
    # behave as it: here the image is fine and only the secret is rolled back.
    serving = bot.world.world.services["medicalcor-api"].revisions["medicalcor-api-00015-abc"]
    serving.healthy, serving.error_rate, serving.p95_latency_ms = True, 0.001, 120.0
    slack = bot.world.slack
    await slack.send_command(bot.events_url, text, **ALICE)
    return await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)


async def _click(bot: RunningBot, message: SlackCall, action: str, user: str) -> None:
    result = await bot.world.slack.click(bot.events_url, action_id=action, user_id=user,
                                         channel_id="C0INCIDENT",
                                         message_ts=message.response["ts"])
    assert result.status == 200


async def test_the_list_shows_versions_states_and_readers(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, f"secret {SECRET}", **ALICE)
    answer = _text(await slack.wait_for("response_url", lambda c: "versions" in _text(c),
                                        timeout=10))
    assert "*version 2* · enabled" in answer and "*version 1* · disabled" in answer
    assert "`latest`" in answer
    assert "medicalcor-api-00013-ghi" in answer  # reads version 1
    assert "medicalcor-api-00015-abc` (100% serving)" in answer  # reads version 2
    assert "emulated-secret" not in answer  # never a value
    assert not running_bot.world.google.calls_to(ACCESS)


async def test_four_steps_in_order_with_a_second_confirmation(
        running_bot: RunningBot) -> None:
    slack, world = running_bot.world.slack, running_bot.world.world
    card = await _card(running_bot)
    text = _text(card)
    assert "1. Enable API_SECRET_KEY version 1" in text
    assert "2. Pin api to API_SECRET_KEY version 1" in text
    assert "4. Then, after a second confirmation in the thread: disable API_SECRET_KEY " \
           "version 2" in text
    await _click(running_bot, card, "rollback.confirm", BOB)
    change = await _change(running_bot, State.SUCCEEDED, State.FAILED)
    assert change.state == State.SUCCEEDED, change.error
    assert _state(running_bot, "1") == "ENABLED"
    pinned = f"medicalcor-api-rb-{change.id}"
    assert world.serving("medicalcor-api") == {pinned: 100}
    refs = [e.version for e in world.services["medicalcor-api"].revisions[pinned].env
            if e.secret]
    assert refs == ["1"]
    offer = await slack.wait_for("chat.postMessage", _posted(DISABLE), timeout=10)
    assert _state(running_bot, "2") == "ENABLED"  # the verdict did not wait for it
    summary = await slack.wait_for("chat.update", _posted("still enabled"), timeout=10)
    assert "version 2 is still enabled" in _text(summary)

    await _click(running_bot, offer, DISABLE, "U0ALICE")  # the requester may not
    await slack.wait_for("response_url", lambda c: "second person" in _text(c), timeout=10)
    assert _state(running_bot, "2") == "ENABLED"
    await _click(running_bot, offer, DISABLE, BOB)
    await slack.wait_for("chat.postMessage", _posted("Disable version 2: done"), timeout=10)
    assert _state(running_bot, "2") == "DISABLED"
    await _click(running_bot, offer, DISABLE, BOB)  # a double click does nothing more
    await slack.wait_for("response_url", lambda c: "Nothing waits" in _text(c), timeout=10)

    events = await running_bot.runtime.deps.audit.for_change(change.id)
    actions = [e.action for e in events]
    order = [actions.index(a) for a in ("secret_version_enabled", "secret_pinned",
                                        "verified", "secret_version_disabled")]
    assert order == sorted(order)
    steps = ("secret_version_enabled", "secret_pinned", "secret_version_disabled")
    assert {e.actor for e in events if e.action in steps} == {BOB}
    assert not running_bot.world.google.calls_to(ACCESS)


async def test_a_failure_at_step_two_stops_there_and_says_so(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    card = await _card(running_bot)
    running_bot.world.google.faults.inject(UPDATE_SERVICE, grpc.StatusCode.PERMISSION_DENIED,
                                           count=-1)
    await _click(running_bot, card, "rollback.confirm", BOB)
    change = await _change(running_bot, State.FAILED)
    report = _text(await slack.wait_for("chat.postMessage", _posted("stopped"), timeout=10))
    assert "✅ done: enable API_SECRET_KEY version 1" in report
    assert "❌ failed: pin api to API_SECRET_KEY version 1" in report
    assert "Undo reverses what was done" in report
    assert _state(running_bot, "1") == "ENABLED"  # step 1 stays done, as the thread says
    assert running_bot.world.world.serving("medicalcor-api") == {
        "medicalcor-api-00015-abc": 100}
    assert change.after is not None and [s["op"] for s in change.after["done"]] == ["enable"]


async def test_undo_restores_the_split_and_disables_what_step_one_enabled(
        running_bot: RunningBot) -> None:
    slack, world = running_bot.world.slack, running_bot.world.world
    card = await _card(running_bot)
    await _click(running_bot, card, "rollback.confirm", BOB)
    done = await _change(running_bot, State.SUCCEEDED)
    undone_card = await slack.wait_for(
        "chat.update", lambda c: c.http_status == 200 and "change.undo" in _text(c)
        and c.args.get("ts") == card.response["ts"], timeout=10)
    result = await slack.click(running_bot.events_url, action_id="change.undo",
                               user_id="U0ALICE", channel_id="C0INCIDENT",
                               message_ts=undone_card.args["ts"])
    assert result.status == 200
    undo_card = await slack.wait_for("chat.postMessage", _posted("undoes change"),
                                     timeout=10)
    assert "Restore api's split: medicalcor-api-00015-abc 100%" in _text(undo_card)
    assert "Disable API_SECRET_KEY version 1" in _text(undo_card)
    await _click(running_bot, undo_card, "rollback.confirm", BOB)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while _state(running_bot, "1") != "DISABLED":
        assert loop.time() < deadline, "the undo did not disable version 1"
        await asyncio.sleep(0.05)
    assert world.serving("medicalcor-api") == {"medicalcor-api-00015-abc": 100}
    assert done.id


async def test_bad_input_says_what_is_valid(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    for text, expected in ((f"secret {SECRET} latest", "not a version number"),
                           ("secret bad/name", "not a secret name"),
                           (f"secret {SECRET} 1 2", "takes a secret's name")):
        ack = await slack.send_command(running_bot.events_url, text, **ALICE)
        assert expected in ack.body  # answered on the ack: no I/O needed
    for text, expected in ((f"secret {SECRET} 9", "has no version 9"),
                           ("secret NO_SUCH_SECRET 1", "was not found")):
        await slack.send_command(running_bot.events_url, text, **ALICE)
        await slack.wait_for("response_url", lambda c, e=expected: e in _text(c), timeout=10)
    assert await running_bot.runtime.deps.changes.history("api", limit=1) == []


async def test_a_pin_after_a_traffic_rollback_warns_it_brings_the_latest_deploy_back(
        running_bot: RunningBot) -> None:
    running_bot.world.world.services["medicalcor-api"].traffic = [
        EmuTrafficTarget(revision="medicalcor-api-00014-def", percent=100)]
    card = _text(await _card(running_bot))
    assert ("api serves medicalcor-api-00014-def, but a new revision is built from its "
            "latest deploy (medicalcor-api-00015-abc") in card


async def test_every_service_that_reads_the_secret_is_pinned_and_verified(
        running_bot: RunningBot) -> None:
    world = running_bot.world.world
    web = world.services["medicalcor-web"]
    newest = max(web.revisions.values(), key=lambda r: r.create_time)
    newest.env.append(EmuEnvVar("API_SECRET_KEY", secret="API_SECRET_KEY", version="latest"))
    newest.healthy, newest.error_rate, newest.p95_latency_ms = True, 0.001, 120.0
    card = await _card(running_bot)
    text = _text(card)
    assert "Pin api to API_SECRET_KEY version 1" in text
    assert "Pin web to API_SECRET_KEY version 1" in text
    await _click(running_bot, card, "rollback.confirm", BOB)
    change = await _change(running_bot, State.SUCCEEDED, State.FAILED)
    assert change.state == State.SUCCEEDED, change.error
    assert world.serving("medicalcor-web") == {f"medicalcor-web-rb-{change.id}": 100}
    assert world.serving("medicalcor-api") == {f"medicalcor-api-rb-{change.id}": 100}
    events = await running_bot.runtime.deps.audit.for_change(change.id)
    pinned = sorted(e.details["service"] for e in events if e.action == "secret_pinned")
    assert pinned == ["api", "web"]
    [verified] = [e for e in events if e.action == "verified"]
    names = {c["name"] for c in verified.details["checks"]}
    assert {"api: health", "web: health"} <= names


async def test_secret_manager_down_says_nothing_changed(running_bot: RunningBot) -> None:
    running_bot.world.google.faults.inject(methods.LIST_SECRET_VERSIONS,
                                           grpc.StatusCode.PERMISSION_DENIED, count=-1)
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, f"secret {SECRET}", **ALICE)
    refusal = await slack.wait_for("response_url", lambda c: "Google refused" in _text(c),
                                   timeout=10)
    assert "Nothing was changed" in _text(refusal)


async def test_a_refused_disable_is_said_and_can_be_clicked_again(
        running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    card = await _card(running_bot)
    await _click(running_bot, card, "rollback.confirm", BOB)
    offer = await slack.wait_for("chat.postMessage", _posted(DISABLE), timeout=15)
    running_bot.world.google.faults.inject(methods.DISABLE_SECRET_VERSION,
                                           grpc.StatusCode.PERMISSION_DENIED)
    await _click(running_bot, offer, DISABLE, BOB)
    await slack.wait_for("chat.postMessage", _posted("Disable version 2 failed"), timeout=10)
    assert _state(running_bot, "2") == "ENABLED"
    await _click(running_bot, offer, DISABLE, "U0CAROL")  # another approver, later
    await slack.wait_for("chat.postMessage", _posted("Disable version 2: done"), timeout=10)
    assert _state(running_bot, "2") == "DISABLED"
