"""The listener's batched hand-offs write exactly the jobs procrastinate writes,
which procrastinate's worker then runs; batches form under load, never delay a
lone hand-off, and a bad hand-off fails alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
import psycopg
import pytest
import pytest_asyncio

from bot.defer import GATHER_SECONDS, BatchDeferrer
from bot.jobs import build_job_app
from bot.jobs_names import LIST_REVISIONS, VERIFY_NOW

COLUMNS = "queue_name, task_name, priority, lock, queueing_lock, args, status, scheduled_at"


@pytest_asyncio.fixture
async def jobs(database_url: str) -> AsyncIterator[procrastinate.App]:
    app = build_job_app(database_url)
    await app.open_async()
    yield app
    await app.close_async()


def _deferrer(app: procrastinate.App) -> BatchDeferrer:
    return BatchDeferrer(lambda: app.connector.pool,  # type: ignore[attr-defined]
                         lambda name: app.tasks[name].queue)


async def _row(database_url: str, job_id: int) -> tuple[Any, ...]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(f"SELECT {COLUMNS} FROM procrastinate_jobs WHERE id = %s",
                                 (job_id,))
        row = await cur.fetchone()
    assert row is not None
    return tuple(row)


async def test_writes_the_row_procrastinate_writes(
    jobs: procrastinate.App, database_url: str
) -> None:
    kwargs = {"service": "api", "command": {"text": "api \"quoted\" \\ ünïcode", "n": 1}}
    ours = await _deferrer(jobs).defer(LIST_REVISIONS, **kwargs)
    theirs = await jobs.configure_task(LIST_REVISIONS).defer_async(**kwargs)
    assert ours != theirs
    assert await _row(database_url, ours) == await _row(database_url, theirs)
    assert (await _row(database_url, ours))[0] == "interactive"  # the task's own queue


async def test_procrastinate_runs_a_job_deferred_this_way(database_url: str) -> None:
    app = procrastinate.App(connector=build_job_app(database_url).connector)
    ran: list[dict[str, Any]] = []

    @app.task(name=LIST_REVISIONS, queue="interactive")
    async def list_revisions(**kwargs: Any) -> None:
        ran.append(kwargs)

    await app.open_async()
    try:
        deferrer = BatchDeferrer(lambda: app.connector.pool,  # type: ignore[attr-defined]
                                 lambda name: app.tasks[name].queue)
        await deferrer.defer(LIST_REVISIONS, service="api", command={"user_id": "U0A"})
        worker = asyncio.create_task(app.run_worker_async(
            wait=False, install_signal_handlers=False, listen_notify=False))
        await asyncio.wait_for(worker, 10)
    finally:
        await app.close_async()
    assert ran == [{"service": "api", "command": {"user_id": "U0A"}}]


async def test_concurrent_hand_offs_share_statements(
    jobs: procrastinate.App, database_url: str
) -> None:
    deferrer = _deferrer(jobs)
    ids = await asyncio.gather(*(deferrer.defer(VERIFY_NOW, service="api", command={"i": i})
                                 for i in range(60)))
    assert len(set(ids)) == 60
    assert deferrer.batches < 10  # the first alone, the rest gathered while it ran
    for i, job_id in enumerate(ids):  # each caller got its own job's id
        assert (await _row(database_url, job_id))[5] == {"service": "api", "command": {"i": i}}


async def test_a_lone_hand_off_is_sent_at_once(jobs: procrastinate.App) -> None:
    deferrer = _deferrer(jobs)
    await deferrer.defer(LIST_REVISIONS, service="api", command={})
    await deferrer.defer(LIST_REVISIONS, service="api", command={})
    assert deferrer.batches == 2


async def test_a_bad_hand_off_fails_alone(jobs: procrastinate.App) -> None:
    deferrer = _deferrer(jobs)
    results = await asyncio.gather(
        deferrer.defer(LIST_REVISIONS, service="api", command={}),
        deferrer.defer(LIST_REVISIONS, service=object()),  # not JSON
        deferrer.defer("rollbot.no_such_task", service="api"),
        deferrer.defer(LIST_REVISIONS, service="web", command={}),
        return_exceptions=True)
    assert isinstance(results[0], int) and isinstance(results[3], int)
    assert isinstance(results[1], TypeError)
    assert isinstance(results[2], KeyError)


async def test_database_down_fails_every_waiting_hand_off(
    jobs: procrastinate.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    deferrer = _deferrer(jobs)

    class Down:
        @contextlib.asynccontextmanager
        async def connection(self) -> AsyncIterator[None]:
            raise psycopg.OperationalError("connection refused")
            yield  # pragma: no cover

    monkeypatch.setattr(deferrer, "_pool", lambda: Down())
    results = await asyncio.gather(*(deferrer.defer(LIST_REVISIONS, service="api")
                                     for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, psycopg.OperationalError) for r in results)
    # …and the next hand-off is tried afresh, not stuck behind the failure.
    monkeypatch.undo()
    assert isinstance(await deferrer.defer(LIST_REVISIONS, service="api"), int)


class _Failures:
    """An on_failure that remembers what it was told."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    async def __call__(self, exc: BaseException) -> None:
        self.errors.append(exc)


async def _count(database_url: str, marker: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM procrastinate_jobs "
                                 "WHERE args->>'service' = %s", (marker,))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_hand_off_writes_without_waiting_and_drain_sees_it_through(
    jobs: procrastinate.App, database_url: str
) -> None:
    deferrer, failures = _deferrer(jobs), _Failures()
    for i in range(30):
        deferrer.hand_off(VERIFY_NOW, on_failure=failures, service="handed-off",
                          command={"i": i})
    assert deferrer.batches == 0  # hand_off returned before any statement went out
    await deferrer.drain()
    assert await _count(database_url, "handed-off") == 30
    assert failures.errors == [] and deferrer.batches < 10


async def test_a_bad_hand_off_is_reported_and_never_raised(
    jobs: procrastinate.App, database_url: str
) -> None:
    deferrer, good, bad_value, bad_task = _deferrer(jobs), _Failures(), _Failures(), _Failures()
    deferrer.hand_off(LIST_REVISIONS, on_failure=good, service="fine", command={})
    deferrer.hand_off(LIST_REVISIONS, on_failure=bad_value, service=object())  # not JSON
    deferrer.hand_off("rollbot.no_such_task", on_failure=bad_task, service="fine")
    await deferrer.drain()
    assert good.errors == [] and await _count(database_url, "fine") == 1
    assert [type(e) for e in bad_value.errors] == [TypeError]
    assert [type(e) for e in bad_task.errors] == [KeyError]


async def test_database_down_or_stuck_reports_every_hand_off(
    jobs: procrastinate.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down:
        @contextlib.asynccontextmanager
        async def connection(self) -> AsyncIterator[None]:
            raise psycopg.OperationalError("connection refused")
            yield  # pragma: no cover

    class Stuck:
        @contextlib.asynccontextmanager
        async def connection(self) -> AsyncIterator[None]:
            await asyncio.sleep(60)  # a pool waiting for a database that never answers
            yield  # pragma: no cover

    for pool, error in ((Down(), psycopg.OperationalError), (Stuck(), TimeoutError)):
        deferrer, failures = BatchDeferrer(lambda p=pool: p,
                                           lambda name: jobs.tasks[name].queue,
                                           timeout=0.2), _Failures()
        for _ in range(5):
            deferrer.hand_off(LIST_REVISIONS, on_failure=failures, service="api")
        await deferrer.drain()
        assert [type(e) for e in failures.errors] == [error] * 5


async def test_a_steady_stream_shares_statements(jobs: procrastinate.App) -> None:
    """Hand-offs arriving one by one while statements are in flight (the listener
    under steady load) still gather: at most one statement per GATHER_SECONDS, not
    one per hand-off that arrived during the previous statement."""
    deferrer, failures = _deferrer(jobs), _Failures()
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i in range(100):
        deferrer.hand_off(VERIFY_NOW, on_failure=failures, service="stream", command={"i": i})
        await asyncio.sleep(0.001)
    elapsed = loop.time() - began
    await deferrer.drain()
    assert failures.errors == []
    assert deferrer.batches <= elapsed / GATHER_SECONDS + 2, (deferrer.batches, elapsed)


async def test_a_hand_off_json_cannot_hold_is_reported_and_its_batch_still_written(
    jobs: procrastinate.App, database_url: str
) -> None:
    """Arguments are dumped with their batch, after the ack: one bad value fails its
    own job (told to its on_failure), not the others sent with it."""
    deferrer, good, bad = _deferrer(jobs), _Failures(), _Failures()
    deferrer.hand_off(VERIFY_NOW, on_failure=good, service="mixed-batch", command={"i": 1})
    deferrer.hand_off(VERIFY_NOW, on_failure=bad, service="mixed-batch", command={"x": {1, 2}})
    deferrer.hand_off(VERIFY_NOW, on_failure=good, service="mixed-batch", command={"i": 3})
    deferrer.hand_off(VERIFY_NOW, on_failure=bad, service="mixed-batch", ratio=float("nan"))
    await deferrer.drain()
    assert good.errors == []
    assert [type(e) for e in bad.errors] == [TypeError, ValueError]
    assert await _count(database_url, "mixed-batch") == 2
    assert deferrer.batches == 1
