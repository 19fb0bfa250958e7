"""The safety the flow gives every kind, per kind: the two-person rule, the channel
rule, one active change per service, double clicks on two replicas, a crash after
the update went through (resumed, never applied twice), a stale etag."""

from __future__ import annotations

import asyncio
import json

import grpc
import psycopg
import pytest

from bot.changes.model import Change, State
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import EmuTrafficTarget
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_inline_flow import _forget_stopped
from tests.e2e.test_rollback_flow import ALICE, API, CONFIRM, SERVING, UPDATE_SERVICE, _click

# (command, what serves 100% when it is done; None: a revision rollbot names)
KINDS = {
    "traffic": ("api 00014-def", "medicalcor-api-00014-def"),
    "image": ("api --image v1.2.2", None),
    "env": ("env api LOG_LEVEL=info", None),
    # pins api to version 1 (a new revision), after enabling it
    "secret": ("secret API_SECRET_KEY 1", None),
}


def _text(call: SlackCall) -> str:
    return (str(call.args.get("text", ""))
            + json.dumps(call.args.get("blocks", []), ensure_ascii=False))


def _heal(bot: RunningBot) -> None:
    """The serving image works, so every kind's change can verify."""
    revision = bot.world.world.services[API].revisions[SERVING]
    revision.healthy, revision.error_rate, revision.p95_latency_ms = True, 0.001, 120.0


def _changes(bot: RunningBot) -> list[SlackCall]:
    return [c for c in bot.world.google.calls_to(UPDATE_SERVICE) if not c.request.validate_only]


async def _card(bot: RunningBot, text: str) -> SlackCall:
    slack = bot.world.slack
    earlier = {c.response.get("ts") for c in slack.calls_to("chat.postMessage")}
    assert (await slack.send_command(bot.events_url, text, **ALICE)).status == 200
    return await slack.wait_for("chat.postMessage", lambda c: (
        c.response.get("ts") not in earlier and "Rollback plan" in _text(c)), timeout=10)


async def _done(bot: RunningBot, within: float = 15) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        changes = await bot.runtime.deps.changes.history("api", limit=1)
        if changes and changes[0].state in (State.SUCCEEDED, State.FAILED):
            return changes[0]
        assert loop.time() < deadline, changes
        await asyncio.sleep(0.05)


def _serves(change: Change, expected: str | None) -> dict[str, int]:
    return {expected or f"medicalcor-api-rb-{change.id}": 100}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_requester_cannot_confirm_and_other_channels_are_refused(
        running_bot: RunningBot, kind: str) -> None:
    slack = running_bot.world.slack
    command, _ = KINDS[kind]
    refused = await slack.send_command(running_bot.events_url, command, user_id="U0ALICE",
                                       channel_id="C0GENERAL", channel_name="general")
    assert "^(inc|incident)[-_]" in json.loads(refused.body)["text"]
    card = await _card(running_bot, command)
    await _click(running_bot, card, CONFIRM, "U0ALICE")
    await slack.wait_for("response_url", lambda c: "needs a second person" in _text(c),
                         timeout=10)
    await asyncio.sleep(0.2)
    assert (await running_bot.runtime.deps.changes.history("api"))[0].state == State.PROPOSED
    assert not _changes(running_bot)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_one_active_change_per_service_whatever_the_kind(
        running_bot: RunningBot, kind: str) -> None:
    await _card(running_bot, KINDS[kind][0])
    other = "api --image v1.2.1" if kind != "image" else "api 00013-ghi"
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, other, **ALICE)
    refusal = await slack.wait_for("response_url", lambda c: "already has an active" in _text(c),
                                   timeout=10)
    assert "One rollback per service at a time" in _text(refusal)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_double_click_on_two_replicas_changes_once(
        running_bot: RunningBot, database_url: str, fresh_redis_url: str, kind: str) -> None:
    _heal(running_bot)
    command, serves = KINDS[kind]
    second = await start_bot(running_bot.world, database_url, fresh_redis_url)
    try:
        card = await _card(running_bot, command)
        await asyncio.gather(_click(running_bot, card, CONFIRM, "U0BOB"),
                             _click(running_bot, card, CONFIRM, "U0BOB", url=second.events_url))
        done = await _done(running_bot)
        await asyncio.sleep(0.3)  # room for a (wrong) second change
    finally:
        await second.stop()
    assert done.state == State.SUCCEEDED, done.error
    assert len(_changes(running_bot)) == 1
    assert running_bot.world.world.serving(API) == _serves(done, serves)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_crash_after_the_update_is_resumed_without_applying_twice(
        running_bot: RunningBot, database_url: str, fresh_redis_url: str, kind: str) -> None:
    """The process died after Cloud Run took the update but before the row moved on:
    the restart resumes the change (it is `executing`, no job carries it), finds it
    applied, and verifies it; no second revision, no second traffic change."""
    _heal(running_bot)
    command, serves = KINDS[kind]
    card = await _card(running_bot, command)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    done = await _done(running_bot)
    assert done.state == State.SUCCEEDED, done.error
    await running_bot.stop()
    _forget_stopped(running_bot)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM procrastinate_jobs")
        await conn.execute("UPDATE changes SET state = 'executing', verdict = NULL,"
                           " finished_at = NULL, after = NULL WHERE id = %s", (done.id,))
    updates = len(_changes(running_bot))
    restarted = await start_bot(running_bot.world, database_url, fresh_redis_url)
    try:
        await running_bot.world.slack.wait_for(
            "chat.postMessage", lambda c: "restarted" in _text(c), timeout=10)
        resumed = await _done(restarted)
    finally:
        await restarted.stop()
    assert resumed.id == done.id and resumed.state == State.SUCCEEDED, resumed.error
    assert len(_changes(running_bot)) == updates  # found applied: nothing sent again
    assert running_bot.world.world.serving(API) == _serves(resumed, serves)


@pytest.mark.parametrize("kind", ["traffic", "image"])
async def test_a_stale_etag_is_read_again_and_checked_again(
        running_bot: RunningBot, kind: str) -> None:
    """Someone's edit lands between rollbot's read and its update (ABORTED): the
    service is read again and, nothing that matters having moved, changed."""
    _heal(running_bot)
    command, serves = KINDS[kind]
    card = await _card(running_bot, command)
    running_bot.world.google.faults.inject(UPDATE_SERVICE, grpc.StatusCode.ABORTED,
                                           message="etag mismatch")
    await _click(running_bot, card, CONFIRM, "U0BOB")
    done = await _done(running_bot)
    assert done.state == State.SUCCEEDED, done.error
    assert len(_changes(running_bot)) == 2  # the refused one, then the one after a re-read
    assert running_bot.world.world.serving(API) == _serves(done, serves)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_new_deploy_between_plan_and_confirm_stops_every_kind(
        running_bot: RunningBot, kind: str) -> None:
    """Another deploy lands after the card was posted (a new revision takes the
    traffic): the Confirm changes nothing and says what moved."""
    _heal(running_bot)
    card = await _card(running_bot, KINDS[kind][0])
    service = running_bot.world.world.services[API]
    newer = service.revisions["medicalcor-api-00014-def"]
    service.traffic = [EmuTrafficTarget(revision=newer.name, percent=50),
                       EmuTrafficTarget(revision=SERVING, percent=50)]
    await _click(running_bot, card, CONFIRM, "U0BOB")
    await running_bot.world.slack.wait_for(
        "chat.postMessage", lambda c: "Stopped before changing anything" in _text(c),
        timeout=10)
    done = await _done(running_bot)
    assert done.state == State.FAILED and (done.error or "").startswith("plan out of date")
    assert not _changes(running_bot)
    assert running_bot.world.world.serving(API) == {newer.name: 50, SERVING: 50}
