"""Hand-offs from the listener to the job queue, cheaply and in batches.

Every Slack request the listener acks is handed to a procrastinate job. Deferring
one through procrastinate's API costs about half a millisecond of the listener's
CPU (a record array dumped as escaped text, logging context, one query per job),
which under concurrent load queued up behind the acks. This writes the same rows
through the same versioned database function (`procrastinate_defer_jobs_v1`, whose
trigger notifies the workers), with the batch as one JSON parameter, and batches
like a group commit: while one INSERT is in flight the next hand-offs gather, and
go together in the following one, at most one statement per 10 ms. A lone
hand-off is never delayed; one in a stream waits up to 10 ms to share a statement.

Only plain jobs (no lock, queueing lock, priority or schedule) go this way; the
workflow's transactional defers keep procrastinate's API and the caller's connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

MAX_BATCH = 200
# Past this a hand-off has failed and the user is told; a pool waiting on a dead
# database would otherwise keep them waiting 30 s for nothing.
HANDOFF_SECONDS = 5.0
# Statements start at least GATHER_SECONDS apart (Nagle-style): a hand-off within
# that time of the last one waits out the rest of it, in company; a lone one, like a
# Confirm click, goes at once. In a stream each statement, and the wake-up for its
# answer, costs the listener more than the acks around it: at 1,000 commands/s a
# statement per GATHER_SECONDS is one per ten commands, and delays each by ≤ 10 ms.
GATHER_SECONDS = 0.01

# The rows procrastinate's own defer writes (see procrastinate/sql/queries.sql,
# "defer_jobs"), from one JSON parameter: the batch, each job's args already JSON.
DEFER_JOBS = """
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW(job->>'q', job->>'t', 0, NULL, NULL, job->'a', NULL)
           ::procrastinate_job_to_defer_v1
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS batch(job, position)
    ORDER BY position
))) AS id
"""


OnFailure = Callable[[BaseException], Awaitable[None]]


class _Pending:
    __slots__ = ("args", "done", "on_failure", "queue", "task")

    def __init__(self, queue: str, task: str, args: dict[str, Any],
                 done: asyncio.Future[int] | None,
                 on_failure: OnFailure | None = None) -> None:
        self.queue, self.task, self.args, self.done = queue, task, args, done
        self.on_failure = on_failure


class BatchDeferrer:
    """`hand_off(task_name, on_failure=..., **kwargs)`: queue a job and go on (the
    listener, after its ack); `await defer(task_name, **kwargs)`: the job's id, once
    committed. A batch not committed within `timeout` seconds has failed."""

    def __init__(self, pool: Callable[[], AsyncConnectionPool[Any]],
                 queue_of: Callable[[str], str], *, timeout: float = HANDOFF_SECONDS) -> None:
        # Callables: procrastinate opens its pool after this is built.
        self._pool, self._queue_of = pool, queue_of
        self._timeout = timeout
        self._pending: list[_Pending] = []
        self._flushing: asyncio.Task[None] | None = None
        self._reports: set[asyncio.Task[None]] = set()
        self._last_sent = float("-inf")
        self.batches = 0  # statements sent, for tests and diagnostics

    def hand_off(self, task_name: str, *, on_failure: OnFailure, **kwargs: Any) -> None:
        """Queue a job without waiting for it: no task, timer or future per hand-off,
        which is most of what a hand-off cost the listener. Nor JSON: the batch is
        dumped in one go when it is sent, after the ack (the arguments are kept until
        then, so pass values nobody changes). Never raises: a job that cannot be
        written (an unknown task, a value JSON can't hold, the database down or slow
        past the timeout) is reported to `on_failure`, in a task."""
        try:
            queue = self._queue_of(task_name)
        except Exception as exc:
            self._report(on_failure, exc)
            return
        self._add(_Pending(queue, task_name, kwargs, None, on_failure))

    async def defer(self, task_name: str, **kwargs: Any) -> int:
        queue = self._queue_of(task_name)  # an unknown task fails here, for this caller only
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._add(_Pending(queue, task_name, kwargs, done))
        return await done

    async def drain(self, within: float = 10.0) -> None:
        """Wait for queued hand-offs to be written (or reported as failed)."""
        waiting = [t for t in (self._flushing, *self._reports) if t is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=within)
        if self._reports:
            await asyncio.wait(list(self._reports), timeout=within)

    def _add(self, job: _Pending) -> None:
        self._pending.append(job)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="defer-batch")

    def _report(self, on_failure: OnFailure, exc: BaseException) -> None:
        async def report() -> None:
            try:
                await on_failure(exc)
            except Exception:
                log.exception("could not report a failed hand-off")

        log.error("hand-off failed: %s: %s", type(exc).__name__, exc)
        task = asyncio.get_running_loop().create_task(report(), name="handoff-failed")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                # Checked before every statement, not once per flush: under steady load
                # hand-offs keep arriving while one is in flight, and the loop would
                # otherwise send each of them alone the moment the last one returned.
                wait = self._last_sent + GATHER_SECONDS - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                batch, body = self._dumped(batch)
                if not batch:
                    continue
                try:
                    async with asyncio.timeout(self._timeout):
                        ids = await self._insert(batch, body)
                except BaseException as exc:
                    for job in batch:
                        self._fail(job, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for job, job_id in zip(batch, ids, strict=True):
                    if job.done is not None and not job.done.done():
                        job.done.set_result(job_id)
        finally:
            self._flushing = None
            if self._pending:  # arrived while a cancellation unwound: don't strand them
                self._flushing = asyncio.create_task(self._flush(), name="defer-batch")

    def _fail(self, job: _Pending, exc: BaseException) -> None:
        if job.done is not None and not job.done.done():
            job.done.set_exception(exc)
        elif job.on_failure is not None and isinstance(exc, Exception):
            self._report(job.on_failure, exc)

    def _dumped(self, batch: list[_Pending]) -> tuple[list[_Pending], str]:
        """The batch as the statement's JSON parameter, in one `json.dumps`; a job whose
        arguments JSON can't hold (NaN included: jsonb refuses it, which would fail the
        whole statement) fails alone and is left out."""
        try:
            return batch, _json([_row(job) for job in batch])
        except Exception:
            good = []
            for job in batch:
                try:
                    _json(_row(job))
                except Exception as exc:
                    self._fail(job, exc)
                else:
                    good.append(job)
            return good, _json([_row(job) for job in good])

    async def _insert(self, batch: list[_Pending], body: str) -> list[int]:
        self.batches += 1
        self._last_sent = asyncio.get_running_loop().time()
        async with self._pool().connection() as conn:
            cur = await conn.execute(DEFER_JOBS, (body,))
            rows = await cur.fetchall()
        if len(rows) != len(batch):
            raise RuntimeError(f"deferred {len(rows)} jobs of {len(batch)}")
        return [int(row[0]) for row in rows]


def _json(value: object) -> str:
    return json.dumps(value, allow_nan=False)


def _row(job: _Pending) -> dict[str, Any]:
    return {"q": job.queue, "t": job.task, "a": job.args}
