"""The change state machine in Postgres.

Every state change is one conditional UPDATE (`WHERE state = ANY(expected)`), so a
double click, a second replica or a Slack retry finds the row already moved and
gets None instead of applying a change twice. The partial unique index from
migration 0004 keeps one active change per subject.

Methods taking `conn` run on that connection without committing, so a caller can
group a state change, its audit event and a job deferral in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from enum import Enum
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.changes.model import ACTIVE_STATES, FINAL_STATES, Change, State, can_transition
from bot.stores.db import use_connection

__all__ = ["UPDATABLE_FIELDS", "ActiveChangeExists", "ChangeStore", "row_to_change"]

# What cursor.execute() accepts, minus t-strings (not used here).
_Query = str | sql.SQL | sql.Composed

# Columns transition()/set_fields() may write. Identity, spec, before, plan and
# requester are fixed at creation; state only moves through transition(); `kind` moves
# once, on confirmation, to a kind the plan offers (Plan.alternatives).
UPDATABLE_FIELDS = frozenset(
    {
        "kind",
        "confirmed_by",
        "cancelled_by",
        "card_ts",
        "thread_ts",
        "summary_ts",
        "after",
        "verdict",
        "error",
        "finished_at",
        "baseline",
        "analysis",
        "rollout",
    }
)
_JSONB_FIELDS = frozenset({"after", "baseline", "analysis", "rollout"})


# Bounded retry for create(): the active row we collided with can finish between
# our INSERT and the SELECT that loads it; then the slot is free and we try again.
_CREATE_ATTEMPTS = 3


class ActiveChangeExists(Exception):
    """The subject already has an active change; `.active` is the one holding the slot."""

    def __init__(self, active: Change) -> None:
        super().__init__(
            f"{active.subject} already has change #{active.id} in state {active.state}"
        )
        self.active = active


def row_to_change(row: Mapping[str, Any]) -> Change:
    """Map a `SELECT * FROM changes` dict row to the model."""
    return Change(
        id=row["id"],
        kind=row["kind"],
        subject=row["subject"],
        service=row["service"],
        spec=dict(row["spec"] or {}),
        before=dict(row["before"] or {}),
        after=None if row["after"] is None else dict(row["after"]),
        state=State(row["state"]),
        requested_by=row["requested_by"],
        confirmed_by=row["confirmed_by"],
        channel_id=row["channel_id"],
        card_ts=row["card_ts"],
        thread_ts=row["thread_ts"],
        summary_ts=row["summary_ts"],
        verdict=row["verdict"],
        error=row["error"],
        dry_run=row["dry_run"],
        plan=dict(row["plan"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        cancelled_by=row["cancelled_by"],
        finished_at=row["finished_at"],
        baseline=row.get("baseline"),
        analysis=list(row.get("analysis") or []),
        rollout=row.get("rollout"),
    )


def _states(states: State | str | Iterable[State | str]) -> list[State]:
    # State is a str, hence iterable: test for it before treating input as a collection.
    if isinstance(states, str):
        return [State(states)]
    return [State(s) for s in states]


def _assignments(fields: Mapping[str, Any]) -> tuple[list[sql.Composable], dict[str, Any]]:
    unknown = set(fields) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Enum):  # e.g. Verdict: store its value, whatever the adapter
            value = value.value
        if name in _JSONB_FIELDS and value is not None:
            value = Jsonb(value)
        parts.append(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)))
        params[name] = value
    return parts, params


class ChangeStore:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    def _conn(
        self, conn: AsyncConnection[Any] | None
    ) -> AbstractAsyncContextManager[AsyncConnection[Any]]:
        return use_connection(self._pool, conn)

    async def _one(
        self, conn: AsyncConnection[Any], query: _Query, params: Any = None
    ) -> Change | None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            row = await cur.fetchone()
        return None if row is None else row_to_change(row)

    async def _many(
        self, conn: AsyncConnection[Any], query: _Query, params: Any = None
    ) -> list[Change]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            rows = await cur.fetchall()
        return [row_to_change(r) for r in rows]

    async def create(
        self,
        *,
        conn: AsyncConnection[Any] | None = None,
        kind: str,
        subject: str,
        service: str,
        spec: dict[str, Any],
        before: dict[str, Any],
        requested_by: str,
        channel_id: str,
        plan: dict[str, Any],
        dry_run: bool = False,
    ) -> Change:
        """A new `proposed` change, or ActiveChangeExists if the subject has one.

        ON CONFLICT DO NOTHING rather than catching UniqueViolation: an error would
        abort a caller's transaction, and this way it stays usable.
        """
        params = {
            "kind": kind,
            "subject": subject,
            "service": service,
            "spec": Jsonb(spec),
            "before": Jsonb(before),
            "requested_by": requested_by,
            "channel_id": channel_id,
            "plan": Jsonb(plan),
            "dry_run": dry_run,
            "state": State.PROPOSED.value,
        }
        async with self._conn(conn) as c:
            for _ in range(_CREATE_ATTEMPTS):
                created = await self._one(
                    c,
                    "INSERT INTO changes (kind, subject, service, spec, before, state,"
                    " requested_by, channel_id, plan, dry_run)"
                    " VALUES (%(kind)s, %(subject)s, %(service)s, %(spec)s, %(before)s,"
                    " %(state)s, %(requested_by)s, %(channel_id)s, %(plan)s, %(dry_run)s)"
                    " ON CONFLICT DO NOTHING RETURNING *",
                    params,
                )
                if created is not None:
                    return created
                active = await self.active_for(subject, conn=c)
                if active is not None:
                    raise ActiveChangeExists(active)
        raise RuntimeError(f"could not create a change of {subject}: slot kept changing")

    async def get(
        self, change_id: int, *, conn: AsyncConnection[Any] | None = None
    ) -> Change | None:
        async with self._conn(conn) as c:
            return await self._one(c, "SELECT * FROM changes WHERE id = %s", (change_id,))

    async def active_for(
        self, subject: str, *, conn: AsyncConnection[Any] | None = None
    ) -> Change | None:
        async with self._conn(conn) as c:
            return await self._one(
                c,
                "SELECT * FROM changes WHERE subject = %s AND state = ANY(%s)",
                (subject, [s.value for s in ACTIVE_STATES]),
            )

    async def active_touching(self, service: str) -> Change | None:
        """An active change that touches `service` though it holds another subject (a
        secret pinned in several services: its plan lists them)."""
        async with self._conn(None) as c:
            return await self._one(
                c,
                "SELECT * FROM changes WHERE state = ANY(%s) AND plan->'services' ? %s"
                " ORDER BY id LIMIT 1",
                ([s.value for s in ACTIVE_STATES], service),
            )

    async def transition(
        self,
        change_id: int,
        expected: State | Iterable[State],
        new: State,
        *,
        conn: AsyncConnection[Any] | None = None,
        **fields: Any,
    ) -> Change | None:
        """Move to `new` if the row is in one of `expected`; None if it was not.

        None means someone else got there first (double click, other replica,
        Slack retry): the caller must then do nothing.
        """
        new = State(new)
        allowed_from = _states(expected)
        if not allowed_from:
            raise ValueError("expected states must not be empty")
        bad = [s.value for s in allowed_from if not can_transition(s, new)]
        if bad:
            raise ValueError(f"transition to {new} not allowed from {', '.join(bad)}")
        parts, params = _assignments(fields)
        if new in FINAL_STATES and "finished_at" not in fields:
            parts.append(sql.SQL("finished_at = now()"))
        parts += [sql.SQL("state = %(new)s"), sql.SQL("updated_at = now()")]
        params |= {
            "new": new.value,
            "id": change_id,
            "expected": [s.value for s in allowed_from],
        }
        query = sql.SQL(
            "UPDATE changes SET {} WHERE id = %(id)s AND state = ANY(%(expected)s) RETURNING *"
        ).format(sql.SQL(", ").join(parts))
        async with self._conn(conn) as c:
            return await self._one(c, query, params)

    async def set_fields(
        self, change_id: int, *, conn: AsyncConnection[Any] | None = None,
        only_in: Iterable[State] | None = None, **fields: Any,
    ) -> Change | None:
        """Update whitelisted columns without a state change; None if no such row
        (or, with `only_in`, if the row is no longer in one of those states)."""
        parts, params = _assignments(fields)
        if not parts:
            return await self.get(change_id, conn=conn)
        parts.append(sql.SQL("updated_at = now()"))
        params["id"] = change_id
        condition = sql.SQL("")
        if only_in is not None:
            params["only_in"] = [State(s).value for s in only_in]
            condition = sql.SQL(" AND state = ANY(%(only_in)s)")
        query = sql.SQL("UPDATE changes SET {} WHERE id = %(id)s{} RETURNING *").format(
            sql.SQL(", ").join(parts), condition
        )
        async with self._conn(conn) as c:
            return await self._one(c, query, params)

    async def override_blockers(self, change_id: int, override: dict[str, Any], *,
                                conn: AsyncConnection[Any] | None = None) -> Change | None:
        """Record an approver's override in a proposed change's plan, once: None if the
        change is no longer proposed or was overridden already (the plan is otherwise
        fixed at creation)."""
        query = ("UPDATE changes SET plan = jsonb_set(plan, '{override}', %s), "
                 "updated_at = now() WHERE id = %s AND state = 'proposed' "
                 "AND coalesce(plan->'override', 'null'::jsonb) = 'null'::jsonb RETURNING *")
        async with self._conn(conn) as c:
            return await self._one(c, query, (Jsonb(override), change_id))

    async def history(self, service: str, limit: int = 10) -> list[Change]:
        """The service's changes of every kind, newest first."""
        async with self._conn(None) as c:
            # id breaks ties: rows created in one transaction share created_at.
            return await self._many(
                c,
                "SELECT * FROM changes WHERE service = %s"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (service, limit),
            )

    async def history_of_subjects(self, subjects: list[str],
                                  limit: int = 10) -> list[Change]:
        """The changes of these subjects (a flag in its groups), newest first."""
        async with self._conn(None) as c:
            return await self._many(
                c,
                "SELECT * FROM changes WHERE subject = ANY(%s)"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (subjects, limit),
            )

    async def expire_proposals(
        self, older_than_seconds: float, *, conn: AsyncConnection[Any] | None = None
    ) -> list[Change]:
        """Cancel (as 'rollbot') proposals older than that and return them.

        A forgotten plan card must not hold the service's slot forever.
        """
        async with self._conn(conn) as c:
            expired = await self._many(
                c,
                "UPDATE changes SET state = %(cancelled)s, cancelled_by = 'rollbot',"
                " finished_at = now(), updated_at = now()"
                " WHERE state = %(proposed)s"
                " AND created_at < now() - make_interval(secs => %(age)s)"
                " RETURNING *",
                {
                    "cancelled": State.CANCELLED.value,
                    "proposed": State.PROPOSED.value,
                    "age": float(older_than_seconds),
                },
            )
        return sorted(expired, key=lambda r: r.id)  # RETURNING has no order
