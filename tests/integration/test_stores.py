"""Migrations, the data model's guarantees, health checks and the Redis de-duplicator."""

from __future__ import annotations

import asyncio
from typing import Any

import procrastinate
import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from bot.jobs import build_job_app
from bot.jobs_names import LIST_REVISIONS
from bot.stores import db, describe_error, redact_url
from bot.stores.db import check_database, open_pool
from bot.stores.embedded import _free_port
from bot.stores.migrations import load_migrations, migrate
from bot.stores.redis_store import Deduplicator, check_redis, open_redis


async def _scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(query.encode(), params)
        row = await cur.fetchone()
        return row[0] if row else None


# -- migrations ---------------------------------------------------------------------------

def test_migrations_are_packaged_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions[0] == "0001"
    assert versions == sorted(versions)


async def test_migrate_applies_initial_then_is_idempotent(empty_database_url: str) -> None:
    assert await migrate(empty_database_url) == [m.version for m in load_migrations()]
    assert await migrate(empty_database_url) == []
    for table in ("changes", "audit_events", "schema_migrations", "procrastinate_jobs"):
        assert await _scalar(empty_database_url, "SELECT to_regclass(%s) IS NOT NULL", (table,))
    assert await _scalar(
        empty_database_url, "SELECT applied_at IS NOT NULL FROM schema_migrations"
        " WHERE version = '0001'"
    )


async def test_concurrent_migrations_do_not_race(empty_database_url: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(4)))
    versions = [m.version for m in load_migrations()]
    assert sorted(results) == [[], [], [], versions]
    assert await _scalar(
        empty_database_url, "SELECT count(*) FROM schema_migrations") == len(versions)


async def test_database_url_fixture_is_already_migrated(database_url: str) -> None:
    assert await migrate(database_url) == []
    assert await _scalar(database_url, "SELECT count(*) FROM changes") == 0


async def test_procrastinate_schema_is_usable(database_url: str) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=database_url))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await noop.defer_async()
    assert await _scalar(database_url, "SELECT count(*) FROM procrastinate_jobs") == 1


# -- data model ---------------------------------------------------------------------------

_INSERT = (
    "INSERT INTO changes (kind, subject, service, state, requested_by, channel_id)"
    " VALUES (%s, %s, %s, %s, 'U1', 'C1') RETURNING id"
)


async def test_one_active_change_per_subject_whatever_its_kind(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(_INSERT, ("traffic", "checkout", "checkout", "proposed"))
        first = (await cur.fetchone() or [None])[0]
        for kind in ("traffic", "image"):
            for state in ("proposed", "confirmed", "executing", "verifying"):
                with pytest.raises(errors.UniqueViolation):
                    await conn.execute(_INSERT, (kind, "checkout", "checkout", state))
        # Another subject is independent; terminal states never block.
        await conn.execute(_INSERT, ("traffic", "payments", "payments", "executing"))
        await conn.execute(_INSERT, ("traffic", "checkout", "checkout", "failed"))
        await conn.execute(_INSERT, ("image", "checkout", "checkout", "succeeded"))

        await conn.execute("UPDATE changes SET state = 'cancelled' WHERE id = %s", (first,))
        await conn.execute(_INSERT, ("image", "checkout", "checkout", "proposed"))


async def test_constraints_and_defaults(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(errors.CheckViolation):
            await conn.execute(_INSERT, ("traffic", "checkout", "checkout", "exploded"))
        with pytest.raises(errors.NotNullViolation):  # every change has a kind
            await conn.execute(_INSERT, (None, "checkout", "checkout", "proposed"))
        cur = await conn.execute(_INSERT, ("traffic", "checkout", "checkout", "proposed"))
        change_id = (await cur.fetchone() or [None])[0]
        cur = await conn.execute(
            "SELECT spec, before, after, dry_run, created_at IS NOT NULL FROM changes"
            " WHERE id = %s", (change_id,),
        )
        assert await cur.fetchone() == ({}, {}, None, False, True)

        cur = await conn.execute(
            "INSERT INTO audit_events (change_id, service, actor, action)"
            " VALUES (%s, 'checkout', 'U1', 'propose') RETURNING outcome, details",
            (change_id,),
        )
        assert await cur.fetchone() == ("ok", {})
        with pytest.raises(errors.CheckViolation):
            await conn.execute(
                "INSERT INTO audit_events (actor, action, outcome) VALUES ('U1', 'x', 'maybe')"
            )
        with pytest.raises(errors.ForeignKeyViolation):
            await conn.execute(
                "INSERT INTO audit_events (change_id, actor, action) VALUES (-1, 'U1', 'x')"
            )


# -- Postgres pool and health --------------------------------------------------------------

async def test_check_database_ok_then_error_when_closed(database_url: str) -> None:
    pool = await open_pool(database_url, min_size=1, max_size=2)
    try:
        assert await check_database(pool) == "ok"
    finally:
        await pool.close()
    status = await check_database(pool)
    assert status.startswith("error: ")


async def test_pool_survives_killed_connections(database_url: str, postgres_url: str) -> None:
    pool = await open_pool(database_url, min_size=2, max_size=2)
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (conninfo_to_dict(database_url)["dbname"],),
            )
        assert await check_database(pool) == "ok"
    finally:
        await pool.close()


async def _kill_backends(database_url: str, postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (conninfo_to_dict(database_url)["dbname"],),
        )


async def test_pool_probes_only_connections_that_rested(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes: list[object] = []
    real_check = AsyncConnectionPool.check_connection

    async def counting(conn: Any) -> None:
        probes.append(conn)
        await real_check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting))
    pool = await open_pool(database_url, min_size=1, max_size=1)
    try:
        for _ in range(3):  # back to back: one probe, on the first checkout
            assert await check_database(pool) == "ok"
        assert len(probes) == 1
        monkeypatch.setattr(db, "IDLE_CHECK_SECONDS", 0.05)
        await asyncio.sleep(0.1)
        assert await check_database(pool) == "ok"
        assert len(probes) == 2  # it rested: probed again
    finally:
        await pool.close()


async def test_pool_replaces_connections_killed_while_resting(
    database_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IDLE_CHECK_SECONDS", 0.05)
    pool = await open_pool(database_url, min_size=2, max_size=2)
    try:
        assert await check_database(pool) == "ok"
        await _kill_backends(database_url, postgres_url)  # e.g. a database failover
        await asyncio.sleep(0.1)
        assert await check_database(pool) == "ok"
    finally:
        await pool.close()


async def test_job_queue_pool_is_autocommit_and_defers_visibly(database_url: str) -> None:
    jobs = build_job_app(database_url)
    await jobs.open_async()
    try:
        job_id = await jobs.configure_task(LIST_REVISIONS).defer_async(
            service="api", command={"user_id": "U0A"})
        async with await psycopg.AsyncConnection.connect(database_url) as other:
            cur = await other.execute(
                "SELECT task_name FROM procrastinate_jobs WHERE id = %s", (job_id,))
            assert await cur.fetchone() == (LIST_REVISIONS,)  # committed, no COMMIT needed
        pool = jobs.connector.pool  # type: ignore[attr-defined]
        async with pool.connection() as conn:
            assert conn.autocommit
    finally:
        await jobs.close_async()


async def test_open_pool_unreachable_fails_fast_without_secrets() -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{_free_port()}/postgres"
    with pytest.raises(RuntimeError) as info:
        await open_pool(url, wait_seconds=1)
    assert "s3cret" not in str(info.value)
    assert "***" in str(info.value)


# -- Redis ------------------------------------------------------------------------------------

async def test_check_redis_ok_and_error(redis_client: aioredis.Redis) -> None:
    assert await check_redis(redis_client) == "ok"
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{_free_port()}/0")
    try:
        assert (await check_redis(dead)).startswith("error: ")
    finally:
        await dead.aclose()


async def test_open_redis_unreachable_hides_password() -> None:
    with pytest.raises(RuntimeError) as info:
        await open_redis(f"redis://:s3cret@127.0.0.1:{_free_port()}/0", wait_seconds=1)
    assert "s3cret" not in str(info.value)


async def test_deduplicator_first_time_only(redis_client: aioredis.Redis) -> None:
    dedupe = Deduplicator(redis_client)
    assert await dedupe.first_time("Ev123") is True
    assert await dedupe.first_time("Ev123") is False
    assert await dedupe.first_time("Ev456") is True
    assert 0 < await redis_client.ttl("rollbot:dedupe:Ev123") <= 600
    other = Deduplicator(redis_client, prefix="other:")
    assert await other.first_time("Ev123") is True


async def test_deduplicator_concurrent_callers_one_winner(redis_client: aioredis.Redis) -> None:
    dedupe = Deduplicator(redis_client)
    results = await asyncio.gather(*(dedupe.first_time("click-1") for _ in range(20)))
    assert results.count(True) == 1


@pytest.mark.slow
async def test_deduplicator_keys_expire(redis_client: aioredis.Redis) -> None:
    dedupe = Deduplicator(redis_client)
    assert await dedupe.first_time("retry", ttl_seconds=1) is True
    assert await dedupe.first_time("retry", ttl_seconds=1) is False
    await asyncio.sleep(1.1)
    assert await dedupe.first_time("retry", ttl_seconds=1) is True
    with pytest.raises(ValueError):
        await dedupe.first_time("retry", ttl_seconds=0)


async def test_fixture_redis_db_starts_empty(redis_client: aioredis.Redis) -> None:
    assert await redis_client.dbsize() == 0
    await redis_client.set("leftover", "x")  # the next test using the fixture must not see it


# -- redaction ----------------------------------------------------------------------------

def test_redaction_helpers() -> None:
    assert redact_url("postgresql://u:pw@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_url("redis://:pw@h/0") == "redis://:***@h/0"
    assert redact_url("postgresql://u@h/x") == "postgresql://u@h/x"
    assert redact_url("host=h password=pw dbname=x") == "host=h password=*** dbname=x"
    err = describe_error(OSError("connect to redis://:pw@h/0 failed\nmore"))
    assert err == "OSError: connect to redis://:***@h/0 failed"
