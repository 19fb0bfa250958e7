"""Versioned SQL migrations (bot/stores/migrations/NNNN_name.sql) plus procrastinate's schema.

Safe to run from several replicas at once: everything happens under one
session-level advisory lock, and each migration is applied in its own
transaction together with its `schema_migrations` row.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from procrastinate.schema import SchemaManager

from bot.stores import redact_url

__all__ = ["MIGRATION_LOCK_KEY", "Migration", "load_migrations", "migrate"]

log = logging.getLogger(__name__)

# Arbitrary but fixed: every rollbot replica must use the same key. Advisory locks
# are per database, so separate databases on one server do not contend.
MIGRATION_LOCK_KEY = 0x726F6C6C626F74  # "rollbot"

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str  # "0001"
    name: str  # "initial"
    sql: str


def load_migrations() -> list[Migration]:
    """All packaged migrations, ordered by version (importlib.resources: works from wheels)."""
    folder = resources.files("bot.stores").joinpath("migrations")
    found: dict[str, Migration] = {}
    for entry in folder.iterdir():
        match = _FILENAME.match(entry.name)
        if not match:
            continue
        version, name = match.groups()
        if version in found:
            raise RuntimeError(f"duplicate migration version {version}: {entry.name}")
        found[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(url: str) -> list[str]:
    """Apply pending migrations and procrastinate's schema; return versions newly applied."""
    migrations = load_migrations()
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        # Session lock (not xact): it must span several transactions. It is released
        # explicitly below, or by the server if this connection dies.
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for migration in migrations:
                if migration.version in done:
                    continue
                try:
                    async with conn.transaction():
                        # No parameters: psycopg sends it as one multi-statement query.
                        await conn.execute(migration.sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_migrations (version) VALUES (%s)",
                            (migration.version,),
                        )
                except psycopg.Error as exc:
                    raise RuntimeError(
                        f"migration {migration.version}_{migration.name} failed: {exc}"
                    ) from exc
                applied_now.append(migration.version)
                log.info("applied migration %s_%s", migration.version, migration.name)
            await _ensure_procrastinate_schema(conn)
        finally:
            # Best effort: closing the connection releases the lock anyway, and an
            # error here must not mask the original one.
            with contextlib.suppress(psycopg.Error):
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    if applied_now:
        log.info("database %s migrated: %s", redact_url(url), ", ".join(applied_now))
    return applied_now


async def _ensure_procrastinate_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return
    # Same SQL as procrastinate's SchemaManager.apply_schema_async, but run on this
    # connection so it is atomic and covered by the migration lock.
    async with conn.transaction():
        await conn.execute(SchemaManager.get_schema().encode())
    log.info("installed procrastinate schema")
