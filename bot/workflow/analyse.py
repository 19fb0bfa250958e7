"""Deep verification around a rollback (the runbook's "Metrics Verification
(5-10 Minutes)" and "Log Verification"): a baseline before any change, then
measurements at the catalog's times after it, each posted as one table in the
thread, each refining the verdict stored with the rollback and shown on the card.

The service's slot is freed by the immediate checks (bot/workflow/verify.py);
this analysis goes on after, so a further action is never blocked for 10 minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from bot.changes.model import Change, State, Verdict
from bot.changes.registry import kind_named
from bot.deps import Deps
from bot.jobs_names import ANALYSE, BASELINE
from bot.judgement import Measurement, compare, judge
from bot.measure import measure
from bot.messages.measurements import console_link, measurement_table, verdict_line
from bot.plans import Plan
from bot.workflow.posting import in_thread, refresh_card

log = logging.getLogger(__name__)


def _link(deps: Deps, service: str) -> str:
    return console_link(deps.catalog.gcp.project, deps.catalog.region_of(service),
                        deps.catalog.services[service].cloud_run_service)


def offset_label(seconds: float) -> str:
    if seconds <= 0:
        return "immediately"
    if seconds < 60:
        return f"after {seconds:g} s"
    return f"after {seconds / 60:g} min"


def _measures(deps: Deps, change: Change) -> bool:
    """Whether the change is one of a Cloud Run service whose metrics tell (a flag or a
    kill switch is verified by its services' checks alone: no wait for a baseline)."""
    return (change.service in deps.catalog.services
            and bool(Plan.from_json(change.plan).cloud_run_service))


async def take_baseline(deps: Deps, change_id: int) -> None:
    """Before any change: what the service looks like now (the incident)."""
    rollback = await deps.changes.get(change_id)
    if rollback is None or rollback.state not in (State.PROPOSED, State.CONFIRMED):
        return  # too late: the traffic already moved, a "baseline" now would mislead
    if not _measures(deps, rollback):
        return  # a flag or a kill switch: its services' checks follow, no metrics
    baseline = await measure(deps, rollback.service, "baseline", since=None)
    # Two scrapes take seconds: if the traffic began to move meanwhile, this
    # "baseline" mixes before and after, and comparing with it would mislead.
    stored = await deps.changes.set_fields(
        rollback.id, baseline=baseline.to_json(), only_in=(State.PROPOSED, State.CONFIRMED))
    if stored is None:
        log.info("baseline of rollback %s dropped: the change began while measuring",
                 rollback.id)


BASELINE_POLL_SECONDS = 0.1

# One row, one snapshot: the baseline, and whether its job is still queued or running
# (procrastinate deletes it once done, or marks it failed).
_BASELINE_STATE = f"""
SELECT c.baseline IS NOT NULL,
       EXISTS (SELECT 1 FROM procrastinate_jobs j
               WHERE j.task_name = '{BASELINE}' AND j.args->>'change_id' = c.id::text
                 AND j.status IN ('todo', 'doing'))
FROM changes c WHERE c.id = %s
"""


async def await_baseline(deps: Deps, change: Change) -> tuple[Change, str | None]:
    """The baseline comes first: a Confirm clicked before it is measured waits for it,
    up to the service's `baseline_wait_seconds`. The change (re-read once there is a
    baseline) and, when it goes on without one, why (for the thread)."""
    if change.baseline is not None or not _measures(deps, change):
        return change, None  # the usual case: no query on the way to the change
    limit = deps.catalog.services[change.service].verification.baseline_wait_seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        async with deps.pool.connection() as conn:
            cur = await conn.execute(_BASELINE_STATE, (change.id,))
            row = await cur.fetchone()
        measured, pending = (bool(row[0]), bool(row[1])) if row else (False, False)
        if measured:
            return await deps.changes.get(change.id) or change, None
        if not pending:
            return change, ("No baseline: none is being measured (its measurement failed, "
                            "see the logs, or never started); the measurement tables "
                            "compare with nothing.")
        if loop.time() >= deadline:
            return change, (f"No baseline: it was not measured within {limit:g} s; the "
                            "measurement tables compare with nothing.")
        await asyncio.sleep(BASELINE_POLL_SECONDS)


async def schedule(deps: Deps, rollback: Change, changed_at: dt.datetime) -> None:
    """Defer one analysis job per configured time after the traffic change."""
    if (not _measures(deps, rollback)
            or kind_named(rollback.kind).measured_revision(rollback) is None):
        return  # nothing serves differently (a flag, a secret version enabled alone)
    policy = deps.catalog.services[rollback.service].verification
    for index, offset in enumerate(policy.measure_after_seconds):
        await deps.jobs.configure_task(
            ANALYSE, schedule_in={"seconds": offset}, lock=f"analysis-{rollback.id}",
        ).defer_async(change_id=rollback.id, index=index,
                      changed_at=changed_at.isoformat())


async def analyse(deps: Deps, change_id: int, index: int, changed_at: str) -> None:
    rollback = await deps.changes.get(change_id)
    if rollback is None or rollback.state not in (State.SUCCEEDED, State.FAILED):
        return
    if any(m.get("index") == index for m in rollback.analysis):
        return  # a retried job: this measurement is already posted
    if not _measures(deps, rollback):
        return
    policy = deps.catalog.services[rollback.service].verification
    offsets = policy.measure_after_seconds
    label = offset_label(offsets[index]) if index < len(offsets) else f"#{index + 1}"
    after = await measure(deps, rollback.service, label,
                          since=dt.datetime.fromisoformat(changed_at),
                          revision=kind_named(rollback.kind).measured_revision(rollback))
    baseline = Measurement.from_json(rollback.baseline) if rollback.baseline else None
    rows = compare(baseline, after, policy)
    await in_thread(deps, rollback, measurement_table(rollback.service, after, rows,
                                                      link=_link(deps, rollback.service)))

    analysis = [*rollback.analysis, {**after.to_json(), "index": index}]
    last = index == len(offsets) - 1
    so_far = None if last or rollback.verdict is None else Verdict(rollback.verdict)
    judgement = judge(rollback.state == State.SUCCEEDED, rows, so_far=so_far)
    outcome = judgement.verdict
    updated = await deps.changes.set_fields(rollback.id, analysis=analysis, verdict=outcome)
    await deps.audit.record(
        actor="rollbot", action="analysis", service=rollback.service, change_id=rollback.id,
        details={"label": label, "verdict": outcome, "reasons": list(judgement.reasons),
                 "rows": [{"metric": r.metric, "outcome": r.outcome} for r in rows]})
    if updated is not None and (last or outcome != rollback.verdict):
        await refresh_card(deps, updated, final_note="; ".join(judgement.reasons) or None)
    if last:
        await in_thread(deps, rollback, verdict_line(
            f"Final verdict after {len(analysis)} measurements", judgement))
