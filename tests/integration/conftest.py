"""Fixtures of the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest_asyncio
from psycopg import sql

from tests.conftest import with_dbname


@pytest_asyncio.fixture
async def empty_database_url(postgres_url: str) -> AsyncIterator[str]:
    """A database with nothing in it, for exercising migrate() from scratch."""
    name = f"rollbot_empty_{uuid.uuid4().hex}"
    ident = sql.Identifier(name)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    yield with_dbname(postgres_url, name)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))
