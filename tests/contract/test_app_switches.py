"""The application's switches through the real clients: its flags table in a real
Postgres database apart from rollbot's, its admin API (the emulator, with faults), and
its kill switches in a real Redis db apart from rollbot's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio

from integrations.app_flags import ApiFlags, DatabaseFlags, FlagStoreError
from integrations.emulators.flags_api import FlagsApiEmulator
from integrations.kill_switches import KillSwitches, SwitchStoreError


@pytest_asyncio.fixture
async def flags_table(app_database_url: str) -> str:
    async with await psycopg.AsyncConnection.connect(app_database_url, autocommit=True) as c:
        await c.execute("CREATE TABLE feature_flags (name text PRIMARY KEY, enabled boolean, "
                        "updated_at timestamptz)")
        await c.execute("INSERT INTO feature_flags VALUES ('new-scoring-model', true, "
                        "now() - interval '1 day'), ('ai-triage', false, NULL)")
    return app_database_url


async def test_the_flags_table_lists_sets_and_keeps_the_old_value(flags_table: str) -> None:
    store = DatabaseFlags(flags_table)
    assert [(f.name, f.enabled) for f in await store.list()] == [
        ("ai-triage", False), ("new-scoring-model", True)]
    before, after = await store.set("new-scoring-model", False)
    assert before.enabled is True and after.enabled is False
    flag = await store.get("new-scoring-model")
    assert flag is not None and flag.enabled is False and flag.updated_at is not None
    assert before.updated_at is not None and flag.updated_at > before.updated_at
    assert await store.get("nope") is None
    with pytest.raises(FlagStoreError, match="no flag 'nope'"):
        await store.set("nope", True)


async def test_custom_table_and_columns(app_database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(app_database_url, autocommit=True) as c:
        await c.execute("CREATE SCHEMA app")
        await c.execute("CREATE TABLE app.toggles (key text PRIMARY KEY, on_ boolean)")
        await c.execute("INSERT INTO app.toggles VALUES ('x', true)")
    store = DatabaseFlags(app_database_url, table="app.toggles", name_column="key",
                          enabled_column="on_", updated_at_column=None)
    before, after = await store.set("x", False)
    assert (before.enabled, after.enabled) == (True, False)


async def test_an_unreachable_database_is_a_clear_error() -> None:
    store = DatabaseFlags("postgresql://app@127.0.0.1:1/app")
    with pytest.raises(FlagStoreError, match="unreachable"):
        await store.list()


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FlagsApiEmulator]:
    emulator = FlagsApiEmulator({"remote-ranking": True})
    await emulator.start()
    yield emulator
    await emulator.stop()


async def test_the_admin_api_reads_and_patches(api: FlagsApiEmulator) -> None:
    store = ApiFlags(api.base_url, api.api_key)
    assert [(f.name, f.enabled) for f in await store.list()] == [("remote-ranking", True)]
    before, after = await store.set("remote-ranking", False)
    assert (before.enabled, after.enabled) == (True, False) and api.flags["remote-ranking"] is False
    assert ("PATCH", "/admin/feature-flags/remote-ranking") in api.requests
    assert await store.get("nope") is None


async def test_5xx_and_dropped_connections_are_retried_up_to_three_times(
        api: FlagsApiEmulator) -> None:
    store = ApiFlags(api.base_url, api.api_key)
    api.inject(503, count=1)
    api.inject(0, count=1)  # a dropped connection
    assert (await store.get("remote-ranking")) is not None  # the third attempt
    api.inject(502, count=3)
    started = time.monotonic()
    with pytest.raises(FlagStoreError, match="unreachable"):
        await store.get("remote-ranking")
    assert time.monotonic() - started < 10
    assert len(api.requests) == 6


async def test_a_4xx_is_not_retried_and_is_quoted(api: FlagsApiEmulator) -> None:
    store = ApiFlags(api.base_url, "wrong-key")
    with pytest.raises(FlagStoreError, match="HTTP 403: invalid API key") as refused:
        await store.list()
    assert refused.value.status == 403 and len(api.requests) == 1


async def test_kill_switches_set_scan_and_read_back(app_redis_url: str,
                                                    fresh_redis_url: str) -> None:
    switches = KillSwitches(app_redis_url)
    try:
        assert (await switches.get("ai_scoring")).on is False
        assert (await switches.set("ai_scoring", True)).raw == "true"
        await switches._redis.set("kill_switch:legacy", "0")  # an app's own "off" value
        states = {s.name: s for s in await switches.scan()}
        assert set(states) == {"ai_scoring", "legacy"}
        assert states["ai_scoring"].on and not states["legacy"].on
        assert (await switches.set("ai_scoring", False)).raw is None
    finally:
        await switches.close()
    rollbot_own = KillSwitches(fresh_redis_url)  # rollbot's db holds none of them
    try:
        assert await rollbot_own.scan() == []
    finally:
        await rollbot_own.close()


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    switches = KillSwitches("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(SwitchStoreError):
            await switches.get("ai_scoring")
    finally:
        await switches.close()
