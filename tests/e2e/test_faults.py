"""Faults: a dead Redis must not stop rollbacks, and readiness says what failed."""

from __future__ import annotations

import socket

import aiohttp
import redis.asyncio as aioredis

from bot.rollbacks.model import State
from bot.stores.redis_store import Deduplicator
from tests.e2e.conftest import RunningBot
from tests.e2e.test_rollback_flow import ALICE, CONFIRM, _click, _propose, _wait_state


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
