"""The moves of a running rollout, each under its lock (bot/workflow/rollout.py): the
next step, pause, resume, promote and abort. Each writes the change and returns what
to tell Slack (`Said`), called once the move is committed: Slack is the view."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

from bot.changes.kind import Applied, ChangeFailed, StagedKind, staged
from bot.changes.model import Change, State, Verdict
from bot.changes.registry import kind_named
from bot.changes.rollout import Rollout
from bot.deps import Deps
from bot.jobs_names import ROLLOUT_STEP
from bot.messages import rollout as words
from bot.messages.base import Message, user_mention
from bot.messages.thread import check_line, verdict_message
from bot.metrics import record_rollback_outcome
from bot.workflow import rollout_chart, verify
from bot.workflow.posting import ChangeView, in_thread

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x726F6C6C  # pg_advisory_xact_lock(namespace, change id): one move at a time

Said = Callable[[], Awaitable[None]]  # what to tell Slack once the move is committed


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@asynccontextmanager
async def locked(deps: Deps, change_id: int) -> AsyncIterator[AsyncConnection[Any]]:
    """The change's rollout lock, in a transaction: moves and their job deferrals
    commit together, and two replicas (or a click and a job) never move it at once."""
    async with deps.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)",
                           (LOCK_NAMESPACE, change_id % 2**31))
        yield conn


def current(change: Change | None, seq: int | None = None) -> Rollout | None:
    """The change's rollout while it runs (and, given `seq`, if that is still its)."""
    if change is None or change.state != State.ROLLING_OUT or not change.rollout:
        return None
    rollout = Rollout.from_json(change.rollout)
    return rollout if seq is None or rollout.seq == seq else None


def kind_of(change: Change) -> StagedKind:
    kind = staged(kind_named(change.kind))
    if kind is None:
        raise TypeError(f"change {change.id} ({change.kind}) is not a staged change")
    return kind


async def store(deps: Deps, conn: AsyncConnection[Any], change: Change,
                rollout: Rollout, **fields: Any) -> Change | None:
    """Write the rollout and, if it is running, schedule its next analysis."""
    stored = await deps.changes.set_fields(change.id, conn=conn, only_in=(State.ROLLING_OUT,),
                                           rollout=rollout.to_json(), **fields)
    if stored is not None and rollout.paused is None and rollout.next_due is not None:
        await deps.jobs.configure_task(
            ROLLOUT_STEP, connection=conn, schedule_at=rollout.next_due,
        ).defer_async(change_id=change.id, seq=rollout.seq)
    return stored


def history_entry(step: int, percent: int, applied: Applied, at: dt.datetime) -> dict[str, Any]:
    return {"step": step, "percent": percent, "traffic": applied.after.get("traffic"),
            "at": at.isoformat()}


async def audit_step(deps: Deps, change: Change, rollout: Rollout, applied: Applied,
                      conn: AsyncConnection[Any] | None = None) -> None:
    await deps.audit.record(
        conn=conn, actor="rollbot", action=f"{change.kind}_step", service=change.service,
        change_id=change.id, details={"step": rollout.step + 1, "percent": rollout.percent,
                                      "traffic": applied.after.get("traffic")})


async def mark_verifying(deps: Deps, conn: AsyncConnection[Any], change: Change,
                          applied: Applied, came_from: State,
                          rollout: Rollout | None) -> Change | None:
    fields: dict[str, Any] = {"after": applied.after}
    if rollout is not None:
        fields["rollout"] = rollout.to_json()
    verifying = await deps.changes.transition(change.id, came_from, State.VERIFYING,
                                              conn=conn, **fields)
    if verifying is not None:
        await deps.audit.record(
            conn=conn, actor="rollbot", action=f"{change.kind}_changed",
            service=change.service, change_id=change.id,
            details={"kind": change.kind, "before": change.before, "after": applied.after})
    return verifying


def tell(deps: Deps, change: Change | None, stage: str, *lines: Message,
         announce: Message | None = None) -> Said:
    """Once the move is committed: its lines in the thread, an announcement in the
    channel, the summary and the card refreshed (nothing if the move did not happen)."""
    async def said() -> None:
        if change is None:
            return
        for line in lines:
            await in_thread(deps, change, line)
        if announce is not None:
            await deps.slack.post(change.channel_id, announce)
        async with ChangeView(deps, change) as view:
            view.summary(change, stage)
            view.card(change)
    return said


async def pause(deps: Deps, conn: AsyncConnection[Any], change: Change, rollout: Rollout,
                reason: str, *, by: str | None, at: dt.datetime) -> Said:
    """Hold the split: the step's clock stops with the time it had left."""
    paused = rollout.moved(paused=reason, remaining_seconds=rollout.time_left(at),
                           step_ends_at=None, next_due=None)
    stored = await store(deps, conn, change, paused)
    await deps.audit.record(conn=conn, actor=by or "rollbot", action=f"{change.kind}_paused",
                            service=change.service, change_id=change.id,
                            details={"reason": reason, "percent": paused.percent})
    announce = (words.announcement(change.service, "paused", by,
                                   f"holding at {paused.percent}%") if by else None)
    return tell(deps, stored, "Paused", words.held(paused, reason, at), announce=announce)


async def resume(deps: Deps, conn: AsyncConnection[Any], change: Change, rollout: Rollout,
                 *, by: str) -> Said:
    at = now()
    left = rollout.remaining_seconds or 0.0
    going = rollout.moved(paused=None, remaining_seconds=None, window_start=at,
                          step_ends_at=at + dt.timedelta(seconds=left))
    going = dataclasses.replace(going, next_due=going.next_check(at))
    stored = await store(deps, conn, change, going)
    await deps.audit.record(conn=conn, actor=by, action=f"{change.kind}_resumed",
                            service=change.service, change_id=change.id,
                            details={"percent": going.percent, "seconds_left": left})
    return tell(deps, stored, "Rolling out", words.resumed(going, by, at))


async def advance(deps: Deps, conn: AsyncConnection[Any], kind: StagedKind, change: Change,
                  rollout: Rollout) -> Said:
    """The next step; the last one completes the change and verifies it."""
    step_index = rollout.step + 1
    percent = rollout.policy.steps[step_index]
    try:
        applied = (await kind.complete(deps, change) if step_index == len(rollout.policy.steps) - 1
                   else await kind.set_step(deps, change, percent))
    except ChangeFailed as failed:
        return await abort(deps, conn, kind, change, rollout,
                           f"step {step_index + 1} failed: {failed.error}", by=None)
    return await _stepped(deps, conn, change, rollout, step_index, applied, promoted=False)


async def _stepped(deps: Deps, conn: AsyncConnection[Any], change: Change,
                   rollout: Rollout, step_index: int, applied: Applied, *,
                   promoted: bool) -> Said:
    """The step is set: store it; the last one goes on into verification. A chart of
    the step that ended at each step change, and the final one at the last."""
    at = now()
    if not promoted:
        await rollout_chart.defer(deps, conn, change.id, f"step{rollout.step + 1}")
    percent = rollout.policy.steps[step_index]
    moved = rollout.moved(step=step_index, step_started_at=at, window_start=at, paused=None,
                          remaining_seconds=None,
                          step_ends_at=at + dt.timedelta(seconds=rollout.policy.step_seconds),
                          history=(*rollout.history,
                                   history_entry(step_index, percent, applied, at)))
    if moved.last_step:
        moved = dataclasses.replace(moved, step_ends_at=None, next_due=None)
        await audit_step(deps, change, moved, applied, conn)
        verifying = await mark_verifying(deps, conn, change, applied, State.ROLLING_OUT, moved)
        await rollout_chart.defer(deps, conn, change.id, "final")

        async def verify_now() -> None:  # after the lock: verification takes its time
            if verifying is None:
                return
            await in_thread(deps, verifying, words.step_line(moved, applied.after["traffic"],
                                                             at))
            async with ChangeView(deps, verifying) as view:
                await verify.verify_change(deps, verifying, view, changed_at=now(),
                                           first=applied.check)
        return verify_now
    moved = dataclasses.replace(moved, next_due=moved.next_check(at))
    stored = await store(deps, conn, change, moved, after=applied.after)
    await audit_step(deps, change, moved, applied, conn)

    return tell(deps, stored, "Rolling out",
                words.step_line(moved, applied.after["traffic"], at), check_line(applied.check))


async def promote(deps: Deps, conn: AsyncConnection[Any], kind: StagedKind, change: Change,
                  rollout: Rollout) -> Said:
    """Promote now: the target at 100%, tag removed, in one update; then verification."""
    try:
        applied = await kind.complete(deps, change)
    except ChangeFailed as failed:
        return await _failed(deps, change, failed)
    return await _stepped(deps, conn, change, rollout, len(rollout.policy.steps) - 1, applied,
                          promoted=True)


async def abort(deps: Deps, conn: AsyncConnection[Any], kind: StagedKind, change: Change,
                rollout: Rollout, reason: str, *, by: str | None) -> Said:
    """Restore exactly the split before (tag removed), read back; the change is over."""
    try:
        applied: Applied | None = await kind.restore(deps, change)
        after = applied.after if applied else None
    except ChangeFailed as failed:
        applied, after = None, failed.after
        reason = f"{reason}; restoring failed: {failed.error}"
    over = rollout.moved(paused=None, next_due=None, step_ends_at=None)
    error = f"aborted{' by ' + user_mention(by) if by else ''}: {reason}"
    final = await deps.changes.transition(
        change.id, State.ROLLING_OUT, State.FAILED, conn=conn, verdict=Verdict.ABORTED,
        error=error, after=after, rollout=over.to_json())
    await deps.audit.record(conn=conn, actor=by or "rollbot", action=f"{change.kind}_aborted",
                            service=change.service, change_id=change.id,
                            outcome="ok" if applied else "error",
                            details={"reason": reason, "after": after})
    await rollout_chart.defer(deps, conn, change.id, "final")

    async def said() -> None:
        if final is None:
            return
        record_rollback_outcome(final.state.value)
        traffic = (after or {}).get("traffic")
        await in_thread(deps, final, words.aborted_line(reason, traffic))
        if applied is not None:
            await in_thread(deps, final, check_line(applied.check))
        await in_thread(deps, final, verdict_message(final, [], deps.catalog.runbook,
                                                     error=error))
        await deps.slack.post(final.channel_id, words.announcement(
            final.service, "aborted", by, f"{reason} The split from before is restored."))
        async with ChangeView(deps, final) as view:
            view.summary(final, "Aborted: the split from before is restored")
            view.card(final, final_note="Aborted: the split from before is restored.")
    return said


async def _failed(deps: Deps, change: Change, failed: ChangeFailed) -> Said:
    async def said() -> None:
        await in_thread(deps, change, failed.report)
    return said
