"""Faults: a dead Redis must not stop rollbacks, and readiness says what failed."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import redis.asyncio as aioredis

from bot.changes.model import State
from bot.stores.embedded import EmbeddedPostgres
from bot.stores.redis_store import Deduplicator
from integrations.emulators.launcher import EmulatedWorld
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import (
    ALICE,
    CONFIRM,
    UPDATE_SERVICE,
    _click,
    _posted,
    _propose,
    _text,
    _text_starts,
    _wait_state,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_rollback_still_works_and_readyz_says_so(
    running_bot: RunningBot,
) -> None:
    deps = running_bot.runtime.deps
    dead = aioredis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.2)
    alive = (deps.redis, deps.dedupe)
    deps.redis, deps.dedupe = dead, Deduplicator(dead)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(running_bot.url + "/readyz") as ready:
                assert ready.status == 503
                body = await ready.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("error")
        card = await _propose(running_bot)
        await _click(running_bot, card, CONFIRM, "U0BOB")
        rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
        assert rollback.state == State.SUCCEEDED
    finally:
        deps.redis, deps.dedupe = alive
        await dead.aclose()
    assert ALICE["channel_id"] == rollback.channel_id


async def test_operation_that_never_finishes_is_reported_by_name(
    running_bot: RunningBot,
) -> None:
    world = running_bot.world
    world.google.operations_never_finish = True
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _wait_state(running_bot, State.FAILED, within=15)
    assert rollback.error and "operations/" in rollback.error  # the operation's name
    assert "did not finish" in rollback.error
    line = await world.slack.wait_for("chat.postMessage", _posted("Traffic unchanged"))
    assert "operations/" in _text(line)
    assert world.world.serving("medicalcor-api") == {"medicalcor-api-00015-abc": 100}


async def test_slack_rate_limits_and_errors_lose_no_message(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    slack.inject("chat.postMessage", status=429, retry_after=1, count=2)
    slack.inject("chat.update", status=503, count=1)
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=20)
    assert rollback.state == State.SUCCEEDED
    await slack.wait_for("chat.postMessage", _posted("Rollback verified"), timeout=15)
    await slack.wait_for("chat.postMessage", _text_starts("Initiating rollback"))
    refused = [c for c in slack.calls if c.http_status != 200]
    assert len(refused) == 3  # the injected faults, each answered by a retry
    assert slack.faults.pending("chat.postMessage") == 0


async def test_postgres_down_nothing_changes_and_the_user_is_told(
    emulated: EmulatedWorld, fresh_redis_url: str
) -> None:
    """The database is the system of record: without it no Cloud Run change
    may happen (its audit row could not be written), and the user hears why."""
    pg = EmbeddedPostgres()
    await pg.start()
    bot = await start_bot(emulated, pg.url, fresh_redis_url)
    try:
        card = await _propose(bot)
        await pg.stop()
        await _click(bot, card, CONFIRM, "U0BOB")
        told = await emulated.slack.wait_for("response_url", _posted("could not queue"), timeout=15)
        assert "Nothing was changed" in _text(told)
        await emulated.slack.send_command(bot.events_url, "web 00013-pqr", **ALICE)
        await emulated.slack.wait_for(
            "response_url", lambda c: len(emulated.slack.calls_to("response_url")) >= 2,
            timeout=15)
        await asyncio.sleep(0.5)
        assert not emulated.google.calls_to(UPDATE_SERVICE)
        assert emulated.world.serving("medicalcor-api") == {"medicalcor-api-00015-abc": 100}
        async with aiohttp.ClientSession() as session:
            async with session.get(bot.url + "/readyz") as ready:
                assert ready.status == 503
                assert (await ready.json())["checks"]["database"].startswith("error")
    finally:
        await asyncio.wait_for(bot.stop(), 30)
        await pg.stop()
