"""Step 3b: a staged change's rollout (a gradual rollback), between its first step and
its last. It knows the kind only through StagedKind (bot/changes/kind.py).

    begin        the first step is set (the kind's apply): `rolling_out`, the clock runs
    step job     at each analysis' time: observe the interval, judge it, then go on,
                 move to the next step, pause (inconclusive) or abort (failure limit)
    controls     Promote now, Abort, Pause, Resume (bot/workflow/rollout_controls.py)
    last step    the target at 100%, tag removed: the usual verification and verdict

Durable: each analysis is a procrastinate job scheduled for its time, holding no
worker between them; the rollout's state lives with the change. Every move happens
under the change's advisory lock and bumps the rollout's `seq`; a job names the `seq`
it was scheduled for, so a job made stale by a click, or run twice, does nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from psycopg import AsyncConnection

from bot.changes.kind import Applied, StagedKind, StepObservation
from bot.changes.model import Change, State
from bot.changes.rollout import Rollout
from bot.deps import Deps
from bot.judgement import Outcome, StepJudgement, judge_step
from bot.messages import rollout as words
from bot.messages.thread import check_line
from bot.workflow import verify
from bot.workflow.posting import ChangeView, in_thread
from bot.workflow.rollout_moves import (
    Said,
    abort,
    advance,
    audit_step,
    current,
    history_entry,
    kind_of,
    locked,
    mark_verifying,
    now,
    pause,
    store,
    tell,
)

log = logging.getLogger(__name__)

LATE_NOTE_SECONDS = 5.0  # an analysis later than this says so in the thread
HOLD_AFTER_INTERVALS = 2  # later than this many intervals (a restart): hold and ask


async def begin(deps: Deps, kind: StagedKind, change: Change, applied: Applied,
                view: ChangeView) -> None:
    """The kind's apply set the first step: start the clock (or verify, if the first
    step is already all the way)."""
    at = now()
    policy = kind.rollout_policy(deps, change)
    rollout = Rollout(
        policy, target=kind.rollout_target(change),
        before={str(k): int(v) for k, v in (change.before.get("traffic") or {}).items()},
        step=0, seq=1, step_started_at=at,
        step_ends_at=at + dt.timedelta(seconds=policy.step_seconds), window_start=at,
        history=(history_entry(0, policy.steps[0], applied, at),))
    rollout = dataclasses.replace(rollout, next_due=rollout.next_check(at))
    if rollout.last_step:
        await to_verification(deps, change, applied, State.EXECUTING, view, rollout)
        return
    async with deps.pool.connection() as conn, conn.transaction():
        moved = await deps.changes.transition(change.id, State.EXECUTING, State.ROLLING_OUT,
                                              conn=conn, after=applied.after,
                                              rollout=rollout.to_json())
        if moved is None:
            return
        await audit_step(deps, moved, rollout, applied, conn)
        await store(deps, conn, moved, rollout)
    await in_thread(deps, moved, words.step_line(rollout, applied.after["traffic"], at))
    await in_thread(deps, moved, check_line(applied.check))
    view.summary(moved, "Rolling out")
    view.card(moved)


async def to_verification(deps: Deps, change: Change, applied: Applied, came_from: State,
                          view: ChangeView, rollout: Rollout | None = None) -> None:
    """All the way at once (a single-step rollout): the usual verification and verdict."""
    async with deps.pool.connection() as conn, conn.transaction():
        verifying = await mark_verifying(deps, conn, change, applied, came_from, rollout)
    if verifying is not None:
        await verify.verify_change(deps, verifying, view, changed_at=now(), first=applied.check)


async def step(deps: Deps, change_id: int, seq: int) -> None:
    """The scheduled job: one analysis of the step, and what follows from it."""
    change = await deps.changes.get(change_id)
    rollout = current(change, seq)
    if change is None or rollout is None or rollout.paused is not None:
        return  # moved on by a click or another job: this one is stale
    at = now()
    late = (at - rollout.next_due).total_seconds() if rollout.next_due else 0.0
    if late > HOLD_AFTER_INTERVALS * rollout.policy.interval_seconds:
        await hold(deps, change_id, seq, f"rollbot restarted: holding at {rollout.percent}%")
        return
    if late > LATE_NOTE_SECONDS:
        await in_thread(deps, change, words.went_on(late))
    kind = kind_of(change)
    observation = await kind.observe(deps, change, rollout.window_start or at, at)
    policy = deps.catalog.services[change.service].verification
    judgement = judge_step(observation.target, [(c.name, c.ok, c.detail)
                                                for c in observation.checks], policy)
    said: Said | None = None
    async with locked(deps, change_id) as conn:
        change = await deps.changes.get(change_id, conn=conn)
        rollout = current(change, seq)
        if change is None or rollout is None or rollout.paused is not None:
            return  # a click moved it while we measured: its move stands
        record = _record(rollout, observation, judgement, at)
        rollout = rollout.moved(window_start=at, analyses=(*rollout.analyses, record),
                                failures=rollout.failures + (judgement.outcome == Outcome.FAIL))
        said = await _after_analysis(deps, conn, kind, change, rollout, judgement, at)
    if said is not None:
        await said()


def _record(rollout: Rollout, observation: StepObservation, judgement: StepJudgement,
            at: dt.datetime) -> dict[str, Any]:
    due = rollout.next_due.isoformat() if rollout.next_due else None
    return {"number": len(rollout.analyses) + 1, "at": at.isoformat(), "due": due,
            "step": rollout.step,
            "percent": rollout.percent, "outcome": judgement.outcome.value,
            "reasons": list(judgement.reasons), "target": observation.target.to_json(),
            "replaced": observation.replaced.to_json(), "apart": observation.apart,
            "link": observation.link,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail}
                       for c in observation.checks]}


async def _after_analysis(deps: Deps, conn: AsyncConnection[Any], kind: StagedKind,
                          change: Change, rollout: Rollout, judgement: StepJudgement,
                          at: dt.datetime) -> Said:
    """Under the lock: abort at the failure limit, hold when inconclusive, move to the
    next step when the step's time is up and it passed, else analyse again later."""
    analysed = _analysis_said(deps, change, rollout)
    if judgement.outcome == Outcome.FAIL and rollout.failures >= rollout.policy.failure_limit:
        reason = (f"{rollout.failures} failed analyses (limit {rollout.policy.failure_limit}); "
                  f"last: {'; '.join(judgement.reasons)}")
        aborted = await abort(deps, conn, kind, change, rollout, reason, by=None)
        return _then(analysed, aborted)
    if judgement.outcome == Outcome.INCONCLUSIVE:
        reason = "; ".join(judgement.reasons) or "metrics inconclusive"
        paused = await pause(deps, conn, change, rollout, reason, by=None, at=at)
        return _then(analysed, paused)
    if judgement.outcome == Outcome.PASS and rollout.time_left(at) <= 0:
        advanced = await advance(deps, conn, kind, change, rollout)
        return _then(analysed, advanced)
    rollout = dataclasses.replace(rollout, next_due=rollout.next_check(at))
    stored = await store(deps, conn, change, rollout)
    return _then(analysed, tell(deps, stored, "Rolling out"))


def _then(first: Said, second: Said) -> Said:
    async def both() -> None:
        await first()
        await second()
    return both


def _analysis_said(deps: Deps, change: Change, rollout: Rollout) -> Said:
    policy = deps.catalog.services[change.service].verification

    async def said() -> None:
        await in_thread(deps, change, words.analysis_line(
            rollout.analyses[-1], rollout, policy.max_error_rate, policy.max_p95_latency_ms))
    return said


async def hold(deps: Deps, change_id: int, seq: int | None, reason: str, *,
               by: str | None = None) -> Change | None:
    """Pause outside a click's flow (a restart found the rollout overdue)."""
    said: Said | None = None
    async with locked(deps, change_id) as conn:
        change = await deps.changes.get(change_id, conn=conn)
        rollout = current(change, seq)
        if change is None or rollout is None or rollout.paused is not None:
            return None
        said = await pause(deps, conn, change, rollout, reason, by=by, at=now())
    await said()
    return change


