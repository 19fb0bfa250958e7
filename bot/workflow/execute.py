"""Step 3: announce, then shift Cloud Run traffic to the target revision.

Idempotent: the announcement is posted once (its ts is stored), the move to
`executing` is conditional, and the audit row is written before Cloud Run is
touched. A job resumed after a crash (state already `executing`) re-applies
the same traffic, which Cloud Run treats as a no-op if it had gone through.
"""

from __future__ import annotations

import asyncio
import logging

from bot.deps import Deps
from bot.jobs_names import VERIFY
from bot.messages.thread import announcement, recovery_note, traffic_failed, traffic_line, verdict
from bot.metrics import record_rollback_outcome
from bot.rollbacks.model import Rollback, State
from bot.workflow.posting import in_thread, refresh_card, update_summary
from integrations.cloud_run import CloudRunError

log = logging.getLogger(__name__)


async def _announce(deps: Deps, rollback: Rollback) -> Rollback:
    """The runbook's "Initiating rollback to revision X", top level in the channel."""
    if rollback.thread_ts:
        return rollback
    ts = await deps.slack.post(rollback.channel_id, announcement(rollback))
    updated = await deps.rollbacks.set_fields(rollback.id, thread_ts=ts)
    return updated or rollback


async def execute(deps: Deps, rollback_id: int, *, resumed: bool = False) -> None:
    rollback = await deps.rollbacks.get(rollback_id)
    if rollback is None or rollback.state not in (State.CONFIRMED, State.EXECUTING):
        log.info("execute: rollback %s is %s, nothing to do", rollback_id,
                 rollback.state if rollback else "missing")
        return
    rollback = await _announce(deps, rollback)
    if resumed or rollback.state == State.EXECUTING:
        await in_thread(deps, rollback, recovery_note(
            rollback, "rollbot restarted while this rollback was in progress; "
                      "resuming the traffic change (it is safe to apply twice)."))
    if rollback.state == State.CONFIRMED:
        async with deps.pool.connection() as conn, conn.transaction():
            moved = await deps.rollbacks.transition(
                rollback.id, State.CONFIRMED, State.EXECUTING, conn=conn)
            if moved is None:
                return  # another worker took it
            # Written before Cloud Run is touched: no change without its audit row.
            await deps.audit.record(
                conn=conn, actor="rollbot", action="traffic_change_started",
                service=rollback.service, rollback_id=rollback.id,
                details={"traffic_before": rollback.traffic_before,
                         "traffic_requested": {rollback.target_revision: 100}})
        rollback = moved
    # Only the announcement must precede the change (runbook); the card and the
    # summary are updated while Cloud Run works, off the critical path.
    card = asyncio.create_task(refresh_card(deps, rollback))
    summary = asyncio.create_task(update_summary(deps, rollback, "Shifting traffic…"))
    region = deps.catalog.region_of(rollback.service)
    try:
        state = await deps.cloud_run.set_traffic(
            rollback.cloud_run_service, region, {rollback.target_revision: 100})
    except CloudRunError as exc:
        await card
        await _traffic_failed(deps, await summary, region, exc)
        return
    await card
    rollback = await summary
    after = state.serving()
    await in_thread(deps, rollback, traffic_line(rollback.traffic_before, after))
    async with deps.pool.connection() as conn, conn.transaction():
        verifying = await deps.rollbacks.transition(
            rollback.id, State.EXECUTING, State.VERIFYING, conn=conn, traffic_after=after)
        if verifying is None:
            return
        await deps.audit.record(
            conn=conn, actor="rollbot", action="traffic_changed", service=rollback.service,
            rollback_id=rollback.id,
            details={"traffic_before": rollback.traffic_before, "traffic_after": after})
        await deps.jobs.configure_task(VERIFY, connection=conn).defer_async(
            rollback_id=rollback.id)
    await refresh_card(deps, verifying)


async def _traffic_failed(deps: Deps, rollback: Rollback, region: str,
                          exc: CloudRunError) -> None:
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
    await in_thread(deps, final, verdict(final, [], deps.catalog.runbook, error=error))
    await update_summary(deps, final, "Failed: traffic unchanged" if now == rollback.traffic_before
                         else "Failed")
    await refresh_card(deps, final, final_note="Traffic unchanged." if now ==
                       rollback.traffic_before else None)
