"""Migration 0004 turns the rollbacks of before into changes of kind `traffic`, with
nothing lost: old rows stay readable in history, on their card and in the audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.changes.audit import AuditLog
from bot.changes.model import State
from bot.changes.registry import kind_named
from bot.changes.store import ChangeStore
from bot.messages.history import history_message
from bot.messages.plan import plan_card
from bot.plans import Plan
from bot.stores.db import open_pool
from bot.stores.migrations import load_migrations, migrate

OLD_PLAN = {
    "service": "api", "cloud_run_service": "medicalcor-api", "region": "europe-west3",
    "current_traffic": {"medicalcor-api-00015-abc": 100},
    "current": {"name": "medicalcor-api-00015-abc", "image": "img:1.15", "creator": None,
                "ready": True, "created": "2024-12-07T10:00:00+00:00"},
    "target": {"name": "medicalcor-api-00014-def", "image": "img:1.14", "creator": "dev",
               "ready": True, "created": "2024-12-06T15:00:00+00:00"},
    "checklist": [{"text": "Target revision identified", "status": "ok",
                   "detail": "medicalcor-api-00014-def"}],
    "dependent_services": ["web"],
}


async def _migrate_to_0003(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in load_migrations():
            if migration.version > "0003":
                break
            await conn.execute(migration.sql.encode())
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                               (migration.version,))


async def _old_rollback(url: str, **row: Any) -> int:
    values = {"service": "api", "cloud_run_service": "medicalcor-api",
              "target_revision": "medicalcor-api-00014-def", "state": "succeeded",
              "traffic_before": Jsonb({"medicalcor-api-00015-abc": 100}),
              "traffic_after": Jsonb({"medicalcor-api-00014-def": 100}),
              "requested_by": "U0ALICE", "confirmed_by": "U0BOB", "channel_id": "C1",
              "verdict": "verified", "plan": Jsonb(OLD_PLAN),
              "finished_at": dt.datetime.now(dt.UTC)} | row
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            f"INSERT INTO rollbacks ({columns}) VALUES ({marks}) RETURNING id",  # type: ignore[arg-type]
            tuple(values.values()))
        rollback_id = (await cur.fetchone() or [0])[0]
        await conn.execute("INSERT INTO audit_events (rollback_id, actor, action, details)"
                           " VALUES (%s, 'U0BOB', 'confirm', '{}')", (rollback_id,))
        return int(rollback_id)


async def test_old_rollbacks_become_traffic_changes_readable_everywhere(
        empty_database_url: str) -> None:
    await _migrate_to_0003(empty_database_url)
    done = await _old_rollback(empty_database_url)
    active = await _old_rollback(empty_database_url, state="proposed", traffic_after=None,
                                 verdict=None, confirmed_by=None, finished_at=None)
    assert await migrate(empty_database_url) == ["0004", "0005"]

    pool = await open_pool(empty_database_url, min_size=1, max_size=2)
    try:
        store, audit = ChangeStore(pool), AuditLog(pool)
        change = await store.get(done)
        assert change is not None
        assert (change.kind, change.subject, change.service) == ("traffic", "api", "api")
        assert change.spec == {"cloud_run_service": "medicalcor-api",
                               "traffic": {"medicalcor-api-00014-def": 100}}
        assert change.before == {"traffic": {"medicalcor-api-00015-abc": 100}}
        assert change.after == {"traffic": {"medicalcor-api-00014-def": 100}}
        assert (change.state, change.verdict, change.confirmed_by) == (
            State.SUCCEEDED, "verified", "U0BOB")
        assert [e.action for e in await audit.for_change(done)] == ["confirm"]
        # The one-active rule holds for the migrated proposal, now per subject.
        assert (await store.active_for("api") or change).id == active

        history = history_message("api", await store.history("api"))
        text = history.text + str(history.blocks_json())
        assert "api → medicalcor-api-00014-def" in text and f"#{done}" in text
        card = plan_card(Plan.from_json(change.plan), change)
        assert "Rollback plan: api → medicalcor-api-00014-def" in card.text
        assert "--to-revisions=medicalcor-api-00014-def=100" in str(card.blocks_json())
        # Its kind reads it: what Undo would restore, which revision was measured.
        kind = kind_named(change.kind)
        assert kind.undo(change).args == {"traffic": {"medicalcor-api-00015-abc": 100}}
        assert kind.measured_revision(change) == "medicalcor-api-00014-def"
    finally:
        await pool.close()
