"""Deep verification around a rollback (the runbook's "Metrics Verification
(5-10 Minutes)" and "Log Verification"): a baseline before any change, then
measurements at the catalog's times after it, each posted as one table in the
thread, each refining the verdict stored with the rollback and shown on the card.

The service's slot is freed by the immediate checks (bot/workflow/verify.py);
this analysis goes on after, so a further action is never blocked for 10 minutes.
"""

from __future__ import annotations

import datetime as dt
import logging

from bot.changes.model import Change, State, Verdict
from bot.changes.registry import kind_named
from bot.deps import Deps
from bot.jobs_names import ANALYSE
from bot.judgement import Measurement, compare, judge
from bot.measure import measure
from bot.messages.measurements import console_link, measurement_table, verdict_line
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


async def take_baseline(deps: Deps, change_id: int) -> None:
    """Before any change: what the service looks like now (the incident)."""
    rollback = await deps.changes.get(change_id)
    if rollback is None or rollback.state not in (State.PROPOSED, State.CONFIRMED):
        return  # too late: the traffic already moved, a "baseline" now would mislead
    baseline = await measure(deps, rollback.service, "baseline", since=None)
    # Two scrapes take seconds: if the traffic began to move meanwhile, this
    # "baseline" mixes before and after, and comparing with it would mislead.
    stored = await deps.changes.set_fields(
        rollback.id, baseline=baseline.to_json(), only_in=(State.PROPOSED, State.CONFIRMED))
    if stored is None:
        log.info("baseline of rollback %s dropped: the change began while measuring",
                 rollback.id)


async def schedule(deps: Deps, rollback: Change, changed_at: dt.datetime) -> None:
    """Defer one analysis job per configured time after the traffic change."""
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
