"""ChangeStore and AuditLog against real Postgres: the state machine's guarantees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from bot.changes.audit import AuditLog
from bot.changes.model import FINAL_STATES, Change, State, Verdict
from bot.changes.store import ActiveChangeExists, ChangeStore
from bot.stores.db import open_pool


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    # Room for the 20-way race, each contender on its own connection.
    pool = await open_pool(database_url, min_size=1, max_size=24)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def store(pool: AsyncConnectionPool[Any]) -> ChangeStore:
    return ChangeStore(pool)


@pytest.fixture
def audit(pool: AsyncConnectionPool[Any]) -> AuditLog:
    return AuditLog(pool)


async def _create(store: ChangeStore, service: str = "api", **over: Any) -> Change:
    args: dict[str, Any] = {
        "kind": "traffic",
        "subject": service,
        "service": service,
        "spec": {"cloud_run_service": f"{service}-svc",
                 "traffic": {f"{service}-00014-def": 100}},
        "before": {"traffic": {f"{service}-00015-abc": 100}},
        "requested_by": "U1",
        "channel_id": "C1",
        "plan": {"steps": [{"percent": 100}]},
    }
    return await store.create(**(args | over))


async def _backdate(pool: AsyncConnectionPool[Any], change_id: int, seconds: int) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE changes SET created_at = created_at - make_interval(secs => %s)"
            " WHERE id = %s",
            (seconds, change_id),
        )


# -- create and the one-active-per-service slot -----------------------------------------


async def test_create_is_proposed_and_maps_every_column(store: ChangeStore) -> None:
    rb = await _create(store, kind="image")
    assert rb.state is State.PROPOSED
    assert rb.active
    assert rb.before == {"traffic": {"api-00015-abc": 100}}
    assert rb.spec["traffic"] == {"api-00014-def": 100}
    assert rb.after is None
    assert rb.plan == {"steps": [{"percent": 100}]}
    assert (rb.kind, rb.subject, rb.dry_run, rb.finished_at, rb.cancelled_by) == (
        "image", "api", False, None, None)
    assert await store.get(rb.id) == rb
    assert await store.get(rb.id + 1000) is None
    assert await store.active_for("api") == rb


async def test_second_create_for_service_raises_with_the_active_row(
    store: ChangeStore,
) -> None:
    first = await _create(store)
    with pytest.raises(ActiveChangeExists) as info:
        await _create(store, requested_by="U2")
    assert info.value.active == first
    other = await _create(store, "web")  # another service has its own slot
    assert other.state is State.PROPOSED


async def test_create_on_callers_connection_keeps_transaction_usable(
    store: ChangeStore, pool: AsyncConnectionPool[Any]
) -> None:
    first = await _create(store)
    async with pool.connection() as conn, conn.transaction():
        with pytest.raises(ActiveChangeExists):
            await store.create(
                conn=conn,
                kind="traffic",
                subject="api",
                service="api",
                spec={},
                before={},
                requested_by="U2",
                channel_id="C1",
                plan={},
            )
        # The conflict did not abort the caller's transaction.
        assert await store.get(first.id, conn=conn) == first


async def test_slot_frees_after_cancel(store: ChangeStore) -> None:
    first = await _create(store)
    cancelled = await store.transition(first.id, State.PROPOSED, State.CANCELLED, cancelled_by="U2")
    assert cancelled is not None
    assert cancelled.state is State.CANCELLED
    assert cancelled.cancelled_by == "U2"
    assert cancelled.finished_at is not None
    assert await store.active_for("api") is None
    second = await _create(store)
    assert second.id != first.id


# -- transitions ------------------------------------------------------------------------


async def test_double_click_transition_returns_none(store: ChangeStore) -> None:
    rb = await _create(store)
    won = await store.transition(rb.id, State.PROPOSED, State.CONFIRMED, confirmed_by="U2")
    assert won is not None
    assert (won.state, won.confirmed_by, won.finished_at) == (State.CONFIRMED, "U2", None)
    assert won.updated_at >= rb.updated_at
    again = await store.transition(rb.id, State.PROPOSED, State.CONFIRMED, confirmed_by="U3")
    assert again is None
    current = await store.get(rb.id)
    assert current is not None
    assert current.confirmed_by == "U2"


async def test_concurrent_confirms_exactly_one_wins(store: ChangeStore) -> None:
    rb = await _create(store)
    results = await asyncio.gather(
        *(
            store.transition(rb.id, State.PROPOSED, State.CONFIRMED, confirmed_by=f"U{i}")
            for i in range(20)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    current = await store.get(rb.id)
    assert current is not None
    assert current.confirmed_by == winners[0].confirmed_by


async def test_full_flow_with_several_expected_states(store: ChangeStore) -> None:
    rb = await _create(store)
    assert await store.transition(rb.id, State.PROPOSED, State.CONFIRMED)
    assert await store.transition(rb.id, [State.CONFIRMED], State.EXECUTING)
    assert await store.transition(
        rb.id, State.EXECUTING, State.VERIFYING, after={"traffic": {"api-00014-def": 100}}
    )
    done = await store.transition(
        rb.id, (State.VERIFYING,), State.SUCCEEDED, verdict=Verdict.VERIFIED
    )
    assert done is not None
    assert done.after == {"traffic": {"api-00014-def": 100}}
    assert (done.state, done.verdict) == (State.SUCCEEDED, "verified")
    assert done.finished_at is not None
    # "fail from wherever it is" is one call; a final row matches none of them.
    active = [State.CONFIRMED, State.EXECUTING, State.VERIFYING]
    assert await store.transition(rb.id, active, State.FAILED, error="late") is None


@pytest.mark.parametrize(
    ("expected", "new"),
    [
        (State.PROPOSED, State.EXECUTING),
        (State.SUCCEEDED, State.FAILED),
        ([State.PROPOSED, State.CONFIRMED], State.CANCELLED),  # not allowed from confirmed
        ([], State.FAILED),
    ],
)
async def test_invalid_transition_raises(store: ChangeStore, expected: Any, new: State) -> None:
    rb = await _create(store)
    with pytest.raises(ValueError):
        await store.transition(rb.id, expected, new)
    assert await store.get(rb.id) == rb


async def test_unknown_field_raises(store: ChangeStore) -> None:
    rb = await _create(store)
    with pytest.raises(ValueError, match="state"):
        await store.set_fields(rb.id, state="succeeded")
    with pytest.raises(ValueError, match="service"):
        await store.transition(rb.id, State.PROPOSED, State.CONFIRMED, service="web")


async def test_set_fields_without_state_change(store: ChangeStore) -> None:
    rb = await _create(store)
    updated = await store.set_fields(rb.id, card_ts="1.1", thread_ts="1.2", summary_ts="1.3")
    assert updated is not None
    assert (updated.card_ts, updated.thread_ts, updated.summary_ts) == ("1.1", "1.2", "1.3")
    assert updated.state is State.PROPOSED
    assert await store.set_fields(rb.id + 1000, card_ts="x") is None


async def test_transition_and_audit_roll_back_together(
    store: ChangeStore, audit: AuditLog, pool: AsyncConnectionPool[Any]
) -> None:
    rb = await _create(store)

    class Boom(Exception):
        pass

    async with pool.connection() as conn:
        with pytest.raises(Boom):
            async with conn.transaction():
                moved = await store.transition(
                    rb.id, State.PROPOSED, State.CONFIRMED, conn=conn, confirmed_by="U2"
                )
                assert moved is not None
                await audit.record(actor="U2", action="confirm", change_id=rb.id, conn=conn)
                raise Boom
    assert await store.get(rb.id) == rb
    assert await audit.for_change(rb.id) == []


async def test_transition_and_audit_commit_together(
    store: ChangeStore, audit: AuditLog, pool: AsyncConnectionPool[Any]
) -> None:
    rb = await _create(store)
    async with pool.connection() as conn, conn.transaction():
        await store.transition(rb.id, State.PROPOSED, State.CONFIRMED, conn=conn)
        await audit.record(actor="U2", action="confirm", change_id=rb.id, conn=conn)
    confirmed = await store.get(rb.id)
    assert confirmed is not None
    assert confirmed.state is State.CONFIRMED
    assert [e.action for e in await audit.for_change(rb.id)] == ["confirm"]


# -- queries ----------------------------------------------------------------------------


async def test_history_newest_first_and_limited(store: ChangeStore) -> None:
    ids = []
    for _ in range(4):
        rb = await _create(store)
        await store.transition(rb.id, State.PROPOSED, State.CANCELLED, cancelled_by="U1")
        ids.append(rb.id)
    await _create(store, "web")
    history = await store.history("api", limit=3)
    assert [r.id for r in history] == ids[::-1][:3]
    assert [r.service for r in await store.history("web")] == ["web"]


async def test_expire_proposals_frees_the_slot(
    store: ChangeStore, pool: AsyncConnectionPool[Any]
) -> None:
    stale = await _create(store, "a")
    await _backdate(pool, stale.id, 3600)
    fresh = await _create(store, "b")
    confirmed = await _create(store, "c")
    await store.transition(confirmed.id, State.PROPOSED, State.CONFIRMED)
    await _backdate(pool, confirmed.id, 3600)  # old but confirmed: not a forgotten card

    expired = await store.expire_proposals(600)
    assert [r.id for r in expired] == [stale.id]
    assert expired[0].state is State.CANCELLED
    assert expired[0].cancelled_by == "rollbot"
    assert expired[0].finished_at is not None
    assert await store.expire_proposals(600) == []
    assert (await _create(store, "a")).state is State.PROPOSED
    assert (await store.get(fresh.id)) == fresh


async def test_final_states_always_have_finished_at(store: ChangeStore) -> None:
    for state in FINAL_STATES - {State.SUCCEEDED}:
        rb = await _create(store, f"svc-{state}")
        moved = await store.transition(rb.id, State.PROPOSED, state)
        assert moved is not None
        assert moved.finished_at is not None


# -- audit ------------------------------------------------------------------------------


async def test_audit_record_for_rollback_and_recent(store: ChangeStore, audit: AuditLog) -> None:
    rb = await _create(store)
    await audit.record(actor="U1", action="propose", change_id=rb.id, service="api")
    await audit.record(
        actor="U9",
        action="confirm",
        change_id=rb.id,
        outcome="denied",
        details={"reason": "not an approver"},
    )
    await audit.record(actor="rollbot", action="expire", service="web")

    events = await audit.for_change(rb.id)
    assert [(e.actor, e.action, e.outcome) for e in events] == [
        ("U1", "propose", "ok"),
        ("U9", "confirm", "denied"),
    ]
    assert events[1].details == {"reason": "not an approver"}
    assert events[1].service == "api"  # filled from the rollback
    assert [e.action for e in await audit.recent()] == ["expire", "confirm", "propose"]
    assert [e.action for e in await audit.recent("api", limit=1)] == ["confirm"]
    assert [e.action for e in await audit.recent("web")] == ["expire"]


async def test_audit_strips_secret_keys(audit: AuditLog) -> None:
    await audit.record(
        actor="U1",
        action="confirm",
        service="api",
        details={
            "token": "xoxb-1",
            "traffic_before": {"r1": 100},
            "nested": {"client_secret": "s", "db_password": "p", "ok": 1},
            "items": [{"API_KEY": "k", "name": "n"}],
        },
    )
    (event,) = await audit.recent("api")
    assert event.details == {
        "traffic_before": {"r1": 100},
        "nested": {"ok": 1},
        "items": [{"name": "n"}],
    }


async def test_audit_rejects_unknown_outcome(audit: AuditLog) -> None:
    with pytest.raises(ValueError):
        await audit.record(actor="U1", action="x", outcome="maybe")


async def test_set_fields_only_in_given_states(store: ChangeStore) -> None:
    rollback = await _create(store)
    kept = await store.set_fields(rollback.id, baseline={"label": "baseline"},
                                  only_in=(State.PROPOSED, State.CONFIRMED))
    assert kept is not None and kept.baseline == {"label": "baseline"}
    await store.transition(rollback.id, State.PROPOSED, State.CONFIRMED, confirmed_by="U0BOB")
    await store.transition(rollback.id, State.CONFIRMED, State.EXECUTING)
    late = await store.set_fields(rollback.id, baseline={"label": "late"},
                                  only_in=(State.PROPOSED, State.CONFIRMED))
    assert late is None
    current = await store.get(rollback.id)
    assert current is not None and current.baseline == {"label": "baseline"}
    assert current.analysis == []
