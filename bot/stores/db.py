"""Postgres connection pool and health check. Queries live with their owners (e.g. audit.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bot.stores import describe_error, redact_url

__all__ = ["check_database", "check_if_idle", "open_pool"]

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 5.0
_last_checkout: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


async def check_if_idle(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pools' `check`: probe a connection with a round trip only if it sat idle.

    A database restart or failover breaks connections that were resting in the
    pool; those are probed (and replaced) on checkout. One used a moment ago is
    alive: probing it on every checkout cost a round trip per query, which was
    most of the listener's work in a hand-off after the ack.
    """
    now = time.monotonic()
    last = _last_checkout.get(conn)
    _last_checkout[conn] = now
    if last is None or now - last > IDLE_CHECK_SECONDS:
        await AsyncConnectionPool.check_connection(conn)


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, wait_seconds: float = 30.0
) -> AsyncConnectionPool[Any]:
    """An opened pool with `min_size` connections ready.

    Connections are not autocommit: `async with pool.connection() as conn:` commits
    on clean exit and rolls back on error. A checkout after a rest is verified first
    (`check_if_idle`), so a database restart/failover costs a reconnect rather than
    a failed request.
    """
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=check_if_idle,
        name="rollbot",
        timeout=wait_seconds,
    )
    try:
        await pool.open(wait=True, timeout=wait_seconds)
    except PoolTimeout:
        await pool.close()
        reason = await _probe(url)
        raise RuntimeError(
            f"database {redact_url(url)} not ready within {wait_seconds:g}s: {reason}"
        ) from None
    except BaseException:
        await pool.close()
        raise
    log.info("database pool open: %s (min=%d, max=%d)", redact_url(url), min_size, max_size)
    return pool


async def _probe(url: str) -> str:
    """One direct connection attempt, to report why the pool could not connect."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
    except Exception as exc:
        return describe_error(exc)
    await conn.close()
    return "connections succeed now (transient failure?)"


async def check_database(pool: AsyncConnectionPool[Any], wait_seconds: float = 3.0) -> str:
    """'ok', or 'error: <short reason>' (no URLs, no secrets) for health endpoints."""
    try:
        async with asyncio.timeout(wait_seconds), pool.connection(wait_seconds) as conn:
            cur = await conn.execute("SELECT 1")
            await cur.fetchone()
    except TimeoutError:
        return f"error: no answer within {wait_seconds:g}s"
    except Exception as exc:
        return f"error: {describe_error(exc)}"
    return "ok"


@contextlib.asynccontextmanager
async def use_connection(
    pool: AsyncConnectionPool[Any], conn: psycopg.AsyncConnection[Any] | None
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The caller's connection (it owns the transaction), else one from the pool
    (committed on clean exit): lets several writes share one transaction."""
    if conn is not None:
        yield conn
        return
    async with pool.connection() as own:
        yield own
