"""The audit trail: who did what to which rollback, with what outcome.

Rows are append-only. `record` takes an optional connection so an event commits
(or rolls back) together with the state change it describes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.stores.db import use_connection

__all__ = ["OUTCOMES", "AuditEvent", "AuditLog", "scrub"]

OUTCOMES = frozenset({"ok", "denied", "error"})

# Keys whose values must never reach the audit table, even if a caller slips.
_SECRET_KEY = re.compile(
    r"token|secret|passw(or)?d|api[_-]?key|authorization|credential|private[_-]?key|cookie",
    re.IGNORECASE,
)

# Details are diagnostic: an unexpected type (datetime, Decimal) must not make the
# audit write, and with it the caller's transaction, fail.
_dumps = functools.partial(json.dumps, default=str)


@dataclass(frozen=True)
class AuditEvent:
    id: int
    change_id: int | None
    service: str | None
    actor: str  # Slack user id, or 'rollbot'
    action: str
    outcome: str  # ok | denied | error
    details: dict[str, Any]
    created_at: dt.datetime


def scrub(value: Any) -> Any:
    """`value` with secret-named keys removed at any depth."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _event(row: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        change_id=row["change_id"],
        service=row["service"],
        actor=row["actor"],
        action=row["action"],
        outcome=row["outcome"],
        details=dict(row["details"] or {}),
        created_at=row["created_at"],
    )


class AuditLog:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def record(
        self,
        *,
        actor: str,
        action: str,
        service: str | None = None,
        change_id: int | None = None,
        outcome: str = "ok",
        details: dict[str, Any] | None = None,
        conn: AsyncConnection[Any] | None = None,
    ) -> None:
        """Append one event; with `conn`, inside the caller's transaction (no commit)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        # service defaults to the rollback's, so recent(service) finds every event of it.
        query = (
            "INSERT INTO audit_events (change_id, service, actor, action, outcome, details)"
            " VALUES (%(change_id)s,"
            " COALESCE(%(service)s, (SELECT service FROM changes WHERE id = %(change_id)s)),"
            " %(actor)s, %(action)s, %(outcome)s, %(details)s)"
        )
        params = {
            "change_id": change_id,
            "service": service,
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "details": Jsonb(scrub(details or {}), dumps=_dumps),
        }
        async with use_connection(self._pool, conn) as target:
            await target.execute(query, params)

    async def for_change(self, change_id: int) -> list[AuditEvent]:
        """Every event of one rollback, oldest first."""
        return await self._select(
            "SELECT * FROM audit_events WHERE change_id = %s ORDER BY created_at, id",
            (change_id,),
        )

    async def recent(self, service: str | None = None, limit: int = 50) -> list[AuditEvent]:
        """The latest events, newest first, of one service or of all."""
        if service is None:
            return await self._select(
                "SELECT * FROM audit_events ORDER BY created_at DESC, id DESC LIMIT %s",
                (limit,),
            )
        return await self._select(
            "SELECT * FROM audit_events WHERE service = %s"
            " ORDER BY created_at DESC, id DESC LIMIT %s",
            (service, limit),
        )

    async def _select(self, query: str, params: tuple[Any, ...]) -> list[AuditEvent]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return [_event(row) for row in await cur.fetchall()]
