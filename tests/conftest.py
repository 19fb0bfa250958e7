"""Shared fixtures: real Postgres and Redis for the whole suite.

DATABASE_URL / REDIS_URL, when set, point the suite at existing servers (CI
services); otherwise embedded servers from the pip wheels are started lazily,
once per session, only if some test asks for them.

Isolation: every `database_url` is a brand-new database cloned from a template
that was migrated once per session, so each test sees the real schema and can
do anything to it. Redis has no cheap equivalent, so `fresh_redis_url` /
`redis_client` FLUSHDB the URL's db index before each test: never point REDIS_URL
at a Redis whose data you care about.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest_asyncio
import redis.asyncio as aioredis
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bot.stores.embedded import EmbeddedPostgres, EmbeddedRedis
from bot.stores.migrations import migrate
from bot.stores.redis_store import open_redis


def with_dbname(url: str, dbname: str) -> str:
    """`url` pointing at another database on the same server (URL or key=value DSN)."""
    if "://" in url:
        return urlunsplit(urlsplit(url)._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


async def _admin(url: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """Server-level URL (database `postgres`, or whatever DATABASE_URL names)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    async with EmbeddedPostgres() as pg:
        yield pg.url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_url() -> AsyncIterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    async with EmbeddedRedis() as server:
        yield server.url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated_template(postgres_url: str) -> AsyncIterator[str]:
    """Name of a database migrated once this session; per-test databases copy it.

    Per-session name, so concurrent runs against one shared server do not collide.
    """
    name = f"rollbot_tpl_{uuid.uuid4().hex[:16]}"
    async with await _admin(postgres_url) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        await migrate(with_dbname(postgres_url, name))
        yield name
    finally:
        await _drop_database(postgres_url, name)


async def _drop_database(postgres_url: str, name: str) -> None:
    async with await _admin(postgres_url) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest_asyncio.fixture
async def database_url(postgres_url: str, migrated_template: str) -> AsyncIterator[str]:
    """URL of a fresh, fully migrated database of its own, dropped after the test."""
    name = f"rollbot_test_{uuid.uuid4().hex}"
    async with await _admin(postgres_url) as conn:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(migrated_template)
        )
        if conn.info.server_version >= 150000:
            # Copying a small template's files beats WAL-logging every block (the default).
            query += sql.SQL(" STRATEGY FILE_COPY")
        await conn.execute(query)
    try:
        yield with_dbname(postgres_url, name)
    finally:
        await _drop_database(postgres_url, name)


@pytest_asyncio.fixture
async def fresh_redis_url(redis_url: str) -> str:
    """`redis_url` with its db emptied first: use this (not redis_url) for isolation."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return redis_url


@pytest_asyncio.fixture
async def redis_client(fresh_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client made by the production `open_redis` (decoded str replies) on an empty db."""
    client = await open_redis(fresh_redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def app_database_url(postgres_url: str) -> AsyncIterator[str]:
    """The *application's* database (its flags, its migrations table): a fresh, empty
    database apart from rollbot's own, dropped after the test."""
    name = f"app_test_{uuid.uuid4().hex}"
    async with await _admin(postgres_url) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_dbname(postgres_url, name)
    finally:
        await _drop_database(postgres_url, name)


@pytest_asyncio.fixture
async def app_redis_url(redis_url: str) -> str:
    """The *application's* Redis (its kill switches): another db of the same server,
    apart from rollbot's own, emptied first."""
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    url = f"{base}/7"
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url
