"""Step 3: the gate (authorize, announce, audit), then the change itself, then verify.

Run inline by the confirm job (no job hand-off on the way to the outside system), or
as the `execute` job when recovery resumes a change. It knows changes only through
their kind's protocol (bot/changes/kind.py):

    prefetch = kind.prefetch(…)     the kind's first read, on its way during the gate
    gate                            confirm (if a click), announce, `executing` + audit
    applied = kind.apply(…)         change, wait, read back
    verify                          the read-back is the first check; the service's follow

Idempotent: the moves are conditional, and a change resumed after a crash (state
already `executing`) is applied again, which every kind makes safe to repeat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.changes.kind import Applied, ChangeFailed, ChangeKind, PlanDrift, Prefetch, staged
from bot.changes.model import Change, State
from bot.changes.registry import kind_named
from bot.deps import Deps
from bot.messages.thread import (
    announcement,
    caution,
    drift_message,
    recovery_note,
    verdict_message,
)
from bot.metrics import record_rollback_outcome
from bot.plans import Plan
from bot.workflow import analyse, rollout, verify
from bot.workflow.posting import ChangeView, in_thread

log = logging.getLogger(__name__)


def _audited(change: Change, step: str) -> str:
    """Audit actions name the kind (`traffic_change_started`, `image_changed`, …), so
    the trail reads as what happened without opening its details."""
    return f"{change.kind}_{step}"


class _NotOurs(Exception):
    """The click was refused or lost (its job told the clicker), or the change left
    `confirmed` under us (another worker carries it): change nothing."""


async def execute(deps: Deps, change_id: int, *, resumed: bool = False) -> None:
    """The `execute` job: recovery's way to resume a change."""
    change = await deps.changes.get(change_id)
    if change is None or change.state not in (State.CONFIRMED, State.EXECUTING):
        log.info("execute: change %s is %s, nothing to do", change_id,
                 change.state if change else "missing")
        return
    async with ChangeView(deps, change) as view:
        await run_change(deps, change, view, resumed=resumed)


async def run_change(
    deps: Deps, change: Change, view: ChangeView, *, resumed: bool = False,
    confirm: Callable[[], Awaitable[Change | None]] | None = None,
    prefetch: Prefetch | None = None,
) -> None:
    """From `confirmed` (or a resumed `executing`) through the change to verification.

    `confirm`: for a click on a `proposed` change, its authorization and move to
    `confirmed` (None: refused or lost); nothing is announced or changed unless it
    succeeds. `prefetch`: the kind's first read, if the caller started it already.
    """
    if prefetch is None:  # the same first read whatever kind a click confirms it as
        prefetch = kind_named(change.kind).prefetch(deps, change.subject)
    try:
        executing = await _gate(deps, change, view, resumed=resumed, confirm=confirm)
    except _NotOurs:
        log.info("execute: change %s is not this job's to change", change.id)
        if prefetch is not None:
            prefetch.cancel()
        return
    kind = kind_named(executing.kind)  # a click may confirm it as another kind (Gradual)
    try:
        applied = await kind.apply(deps, executing, prefetch)
    except PlanDrift as drift:
        await _drifted(deps, executing, drift, view)
        return
    except ChangeFailed as failed:
        await _failed(deps, executing, failed, view)
        return
    stages = staged(kind)
    if stages is not None:  # the first step is set: the rollout goes on in scheduled jobs
        await rollout.begin(deps, stages, executing, applied, view)
        return
    await _verify(deps, kind, executing, applied, view)


async def _gate(deps: Deps, change: Change, view: ChangeView, *, resumed: bool,
                confirm: Callable[[], Awaitable[Change | None]] | None) -> Change:
    """What must precede the change: the click's confirmation, the runbook's
    "Initiating rollback to revision X" (top level in the channel) and, unless a crash
    left it executing, the move to `executing` with its audit row, committed."""
    current = change if confirm is None else await confirm()
    if current is None:
        raise _NotOurs
    note = None
    if confirm is not None:  # the baseline comes first (a resumed change never waits)
        current, note = await analyse.await_baseline(deps, current)
    try:
        return await _announce_and_start(deps, current, view, resumed, note)
    except _NotOurs:
        raise
    except Exception:
        if confirm is not None:  # e.g. Slack or the database failed before the change:
            view.card(current)  # no buttons left on the card; recovery resumes it
        raise


async def _announce_and_start(deps: Deps, change: Change, view: ChangeView,
                              resumed: bool, note: str | None = None) -> Change:
    if not change.thread_ts:
        ts = await deps.slack.post(change.channel_id, announcement(change))
        change = dataclasses.replace(change, thread_ts=ts)
    if note is not None:
        await in_thread(deps, change, caution(note))
    if resumed or change.state == State.EXECUTING:
        await in_thread(deps, change, recovery_note(
            change, "rollbot restarted while this change was in progress; "
                    "resuming it (it is safe to apply twice)."))
    if change.state == State.EXECUTING:  # its audit row was committed before the crash
        executing = await deps.changes.set_fields(
            change.id, thread_ts=change.thread_ts) or change
    else:
        plan = Plan.from_json(change.plan)  # its words are masked; the spec may not be
        async with deps.pool.connection() as conn, conn.transaction():
            moved = await deps.changes.transition(
                change.id, State.CONFIRMED, State.EXECUTING, conn=conn,
                thread_ts=change.thread_ts)
            if moved is None:
                raise _NotOurs
            await deps.audit.record(
                conn=conn, actor="rollbot", action=_audited(change, "change_started"),
                service=change.service,
                change_id=change.id,
                details={"kind": change.kind, "headline": plan.headline,
                         "changes": list(plan.changes), "before": change.before})
        executing = moved
    # The card and the summary follow while the change runs, off the critical path.
    view.card(executing)
    view.summary(executing, "Changing…")
    return executing


async def _verify(deps: Deps, kind: ChangeKind, change: Change, applied: Applied,
                  view: ChangeView) -> None:
    # The read-back is the first check (the runbook's "Check the serving revision");
    # its line goes out beside the move to `verifying`.
    await verify.verify_change(
        deps, change, view, changed_at=dt.datetime.now(dt.UTC), first=applied.check,
        begun=asyncio.ensure_future(_mark_verifying(deps, change, applied.after)))


async def _mark_verifying(deps: Deps, change: Change, after: dict[str, Any]) -> Change | None:
    async with deps.pool.connection() as conn, conn.transaction():
        verifying = await deps.changes.transition(
            change.id, State.EXECUTING, State.VERIFYING, conn=conn, after=after)
        if verifying is not None:
            await deps.audit.record(
                conn=conn, actor="rollbot", action=_audited(change, "changed"),
                service=change.service,
                change_id=change.id,
                details={"kind": change.kind, "before": change.before, "after": after})
        return verifying


async def _failed(deps: Deps, change: Change, failed: ChangeFailed, view: ChangeView) -> None:
    """Say exactly what failed and what the outside system has now."""
    moved = await deps.changes.transition(
        change.id, State.EXECUTING, State.FAILED, error=failed.error, verdict="failed",
        after=failed.after)
    await deps.audit.record(
        actor="rollbot", action=_audited(change, "change_failed"), service=change.service,
        change_id=change.id,
        outcome="error", details={"kind": change.kind, "error": failed.error,
                                  "after": failed.after})
    final = moved or change
    if moved is not None:
        record_rollback_outcome(moved.state.value)
    await in_thread(deps, final, failed.report)
    await in_thread(deps, final, verdict_message(final, [], deps.catalog.runbook,
                                                 error=failed.error))
    view.summary(final, "Failed: unchanged" if failed.unchanged else "Failed")
    view.card(final, final_note="Nothing was changed." if failed.unchanged else None)


async def _drifted(deps: Deps, change: Change, drift: PlanDrift, view: ChangeView) -> None:
    """The plan is out of date: nothing was changed; say what moved, offer a new plan."""
    error = f"plan out of date: {drift.what}"
    moved = await deps.changes.transition(change.id, State.EXECUTING, State.FAILED,
                                          error=error)
    await deps.audit.record(
        actor="rollbot", action="plan_drift", service=change.service, change_id=change.id,
        outcome="error", details={"kind": change.kind, "what": drift.what})
    final = moved or change
    if moved is not None:
        record_rollback_outcome(moved.state.value)
    await in_thread(deps, final, drift_message(final, drift.what))
    view.summary(final, "Stopped: the plan was out of date; nothing was changed")
    view.card(final, final_note="Plan out of date: nothing was changed.")
