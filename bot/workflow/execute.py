"""Step 3: announce, then shift Cloud Run traffic to the target revision; then verify.

Run inline by the confirm job (no job hand-off on the way to Cloud Run), or as the
`execute` job when recovery resumes a rollback. Cloud Run's read of the service
overlaps what must come before the change (the click's authorization and commit,
the announcement, the move to `executing` and its audit row, committed); the
update is sent only after those. The read-back of the service is the first check
("serving"): its line and the move to `verifying` run beside the other checks,
whose lines follow once both are done.
Idempotent: the moves are conditional, and a rollback resumed after a crash (state
already `executing`) re-applies the same traffic, which Cloud Run treats as a no-op
if it had gone through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from bot.deps import Deps
from bot.messages.thread import announcement, recovery_note, traffic_failed, verdict_message
from bot.metrics import record_rollback_outcome
from bot.rollbacks.model import Rollback, State
from bot.verification import serving_check
from bot.workflow import verify
from bot.workflow.posting import RollbackView, in_thread
from integrations.cloud_run import CloudRunError, PendingRead

log = logging.getLogger(__name__)


class _NotOurs(Exception):
    """The click was refused or lost (its job told the clicker), or the rollback left
    `confirmed` under us (another worker carries it): change nothing."""


async def execute(deps: Deps, rollback_id: int, *, resumed: bool = False) -> None:
    """The `execute` job: recovery's way to resume a rollback."""
    rollback = await deps.rollbacks.get(rollback_id)
    if rollback is None or rollback.state not in (State.CONFIRMED, State.EXECUTING):
        log.info("execute: rollback %s is %s, nothing to do", rollback_id,
                 rollback.state if rollback else "missing")
        return
    async with RollbackView(deps, rollback) as view:
        await shift_traffic(deps, rollback, view, resumed=resumed)


async def _before_change(deps: Deps, rollback: Rollback, view: RollbackView,
                         resumed: bool) -> Rollback:
    """What must precede the change: the runbook's "Initiating rollback to revision X"
    (top level in the channel) and, unless a crash left it executing, the move to
    `executing` with its audit row, committed: no change without its audit row."""
    if not rollback.thread_ts:
        ts = await deps.slack.post(rollback.channel_id, announcement(rollback))
        rollback = dataclasses.replace(rollback, thread_ts=ts)
    if resumed or rollback.state == State.EXECUTING:
        await in_thread(deps, rollback, recovery_note(
            rollback, "rollbot restarted while this rollback was in progress; "
                      "resuming the traffic change (it is safe to apply twice)."))
    if rollback.state == State.EXECUTING:  # its audit row was committed before the crash
        executing = await deps.rollbacks.set_fields(
            rollback.id, thread_ts=rollback.thread_ts) or rollback
    else:
        async with deps.pool.connection() as conn, conn.transaction():
            moved = await deps.rollbacks.transition(
                rollback.id, State.CONFIRMED, State.EXECUTING, conn=conn,
                thread_ts=rollback.thread_ts)
            if moved is None:
                raise _NotOurs
            await deps.audit.record(
                conn=conn, actor="rollbot", action="traffic_change_started",
                service=rollback.service, rollback_id=rollback.id,
                details={"traffic_before": rollback.traffic_before,
                         "traffic_requested": {rollback.target_revision: 100}})
        executing = moved
    # The card and the summary follow while Cloud Run works, off the critical path.
    view.card(executing)
    view.summary(executing, "Shifting traffic…")
    return executing


async def shift_traffic(
    deps: Deps, rollback: Rollback, view: RollbackView, *, resumed: bool = False,
    confirm: Callable[[], Awaitable[Rollback | None]] | None = None,
    read: PendingRead | None = None,
) -> None:
    """From `confirmed` (or a resumed `executing`) to `verifying`, then verification.

    `confirm`: for a click on a `proposed` rollback, its authorization and move to
    `confirmed` (None: refused or lost). It runs while Cloud Run is read, before
    anything else: nothing is announced or changed unless it succeeds. `read`: Cloud
    Run's read of the service, if the caller started it already (see decide.confirm).
    """
    region = deps.catalog.region_of(rollback.service)
    confirmed: list[Rollback] = []
    started: list[Rollback] = []

    async def before_change() -> None:
        current = rollback if confirm is None else await confirm()
        if current is None:
            raise _NotOurs
        confirmed.append(current)
        started.append(await _before_change(deps, current, view, resumed))

    began = time.monotonic()
    try:
        state = await deps.cloud_run.set_traffic(
            rollback.cloud_run_service, region, {rollback.target_revision: 100},
            before_change=before_change, read=read)
    except _NotOurs:
        log.info("execute: rollback %s is not this job's to change", rollback.id)
        return
    except CloudRunError as exc:
        if not started:
            raise
        # before_change has run (a read error is raised after it): we own `executing`.
        await _traffic_failed(deps, started[0], region, exc, view)
        return
    except Exception:
        if confirmed and not started:  # e.g. Slack or the database failed before the change:
            view.card(confirmed[0])  # no buttons left on the card; recovery resumes it
        raise
    executing = started[0]
    after = state.serving()
    changed_at = dt.datetime.now(dt.UTC)
    # The read-back that ended set_traffic is the first check: the runbook's "Check the
    # serving revision". Its line goes out beside the move to `verifying`.
    serving = serving_check({executing.target_revision: 100}, after, executing.traffic_before,
                            elapsed_ms=(time.monotonic() - began) * 1000)
    await verify.verify_rollback(
        deps, executing, view, changed_at=changed_at, serving=serving,
        begun=asyncio.ensure_future(_mark_verifying(deps, executing, after)))


async def _mark_verifying(deps: Deps, rollback: Rollback,
                          after: dict[str, int]) -> Rollback | None:
    async with deps.pool.connection() as conn, conn.transaction():
        verifying = await deps.rollbacks.transition(
            rollback.id, State.EXECUTING, State.VERIFYING, conn=conn, traffic_after=after)
        if verifying is not None:
            await deps.audit.record(
                conn=conn, actor="rollbot", action="traffic_changed", service=rollback.service,
                rollback_id=rollback.id,
                details={"traffic_before": rollback.traffic_before, "traffic_after": after})
        return verifying


async def _traffic_failed(deps: Deps, rollback: Rollback, region: str,
                          exc: CloudRunError, view: RollbackView) -> None:
    """Say exactly what failed and what serves now (read back, not assumed)."""
    try:
        now: dict[str, int] | None = (
            await deps.cloud_run.get_service(rollback.cloud_run_service, region)).serving()
    except CloudRunError:
        now = None
    error = f"Cloud Run traffic change failed: {exc.message}"
    failed = await deps.rollbacks.transition(
        rollback.id, State.EXECUTING, State.FAILED, error=error, verdict="failed",
        traffic_after=now)
    await deps.audit.record(
        actor="rollbot", action="traffic_change_failed", service=rollback.service,
        rollback_id=rollback.id, outcome="error",
        details={"error": exc.message, "kind": exc.kind, "traffic_now": now})
    final = failed or rollback
    if failed is not None:
        record_rollback_outcome(failed.state.value)
    await in_thread(deps, final, traffic_failed(
        error, now, before=rollback.traffic_before,
        cloud_run_service=rollback.cloud_run_service, region=region))
    await in_thread(deps, final, verdict_message(final, [], deps.catalog.runbook, error=error))
    unchanged = now == rollback.traffic_before
    view.summary(final, "Failed: traffic unchanged" if unchanged else "Failed")
    view.card(final, final_note="Traffic unchanged." if unchanged else None)
