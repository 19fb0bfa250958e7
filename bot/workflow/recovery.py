"""Crash recovery and housekeeping, run at start and periodically by any replica.

- Jobs of a replica that died (no worker heartbeat) are stalled: procrastinate
  finds them and we hand them back to the queue, so another replica resumes.
- A change left in confirmed/executing/verifying with no job queued or running
  (e.g. the job carrying it failed) gets its next job again, with a note in its
  thread. Never silently. The job carrying a change is its confirm job (which goes
  on inline into the change and verification) or an execute/verify job deferred
  here, each naming it by its `change_id` argument: while one is queued or running,
  nothing else is deferred for it, so a change is never applied twice at once.
- Unanswered proposals expire, so a forgotten plan card doesn't hold the slot.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.changes.model import Change, State
from bot.deps import Deps
from bot.jobs_names import CONFIRM, EXECUTE, ROLLOUT_CONTROL, ROLLOUT_STEP, VERIFY
from bot.messages.thread import recovery_note
from bot.workflow import execute, verify
from bot.workflow.posting import ChangeView, in_thread, refresh_card
from bot.workflow.propose import PROPOSAL_TTL_SECONDS

log = logging.getLogger(__name__)

STALLED_AFTER_SECONDS = 30.0

# A job that carries the change: queued or running, and naming it. Compared as
# text, never cast: a malformed argument must not break the maintenance query.
_CARRIES = """
j.status IN ('todo', 'doing')
AND j.task_name = ANY(%(tasks)s) AND j.args->>'change_id' = {id}
"""

_PENDING_JOB = f"""
SELECT 1 FROM procrastinate_jobs j
WHERE {_CARRIES.format(id="%(change_id)s")}
  AND j.id IS DISTINCT FROM %(except_job)s
LIMIT 1
"""

# One statement, one snapshot: a job that finishes the rollback commits the final
# state before its own status, so a rollback is never seen unfinished and jobless
# merely because its job just ended.
_ORPHANS = f"""
SELECT r.id FROM changes r
WHERE r.state = ANY(%(states)s)
  AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE {_CARRIES.format(id="r.id::text")})
ORDER BY r.created_at, r.id
"""

_RESUME_LOCK = 0x726F6C6C626F74  # "rollbot": pg_advisory_xact_lock key of resume_orphans
_UNFINISHED = (State.CONFIRMED, State.EXECUTING, State.VERIFYING)
# A rollout's step and control jobs carry it too: the last step and Promote now go on
# inline into verification.
_PARAMS = {"tasks": [EXECUTE, VERIFY, CONFIRM, ROLLOUT_STEP, ROLLOUT_CONTROL]}

# A running (not paused) rollout always has its next step job queued: the job is
# deferred in the transaction that writes the rollout. One without (a job that
# failed) gets one again, due when its rollout says (at once if that has passed); the
# job itself holds the rollout if it is overdue by more than two analysis intervals
# (bot/workflow/rollout.py).
_STRANDED_ROLLOUTS = f"""
SELECT r.id, (r.rollout->>'seq')::bigint, (r.rollout->>'next_due')::timestamptz
FROM changes r
WHERE r.state = 'rolling_out' AND r.rollout->>'paused' IS NULL
  AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j WHERE {_CARRIES.format(id="r.id::text")})
ORDER BY r.created_at, r.id
"""


async def retry_stalled_jobs(deps: Deps) -> int:
    stalled = list(await deps.jobs.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=STALLED_AFTER_SECONDS))
    for job in stalled:
        log.warning("retrying stalled job %s (%s)", job.id, job.task_name)
        await deps.jobs.job_manager.retry_job(job)
    return len(stalled)


async def _has_pending_job(deps: Deps, change_id: int, *,
                           except_job: int | None = None) -> bool:
    """Whether a job (other than `except_job`) is queued or running for the rollback."""
    async with deps.pool.connection() as conn:
        cur = await conn.execute(_PENDING_JOB, _PARAMS | {
            "change_id": str(change_id), "except_job": except_job})
        return await cur.fetchone() is not None


def _resume_what(rollback: Change) -> str:
    return ("re-running verification" if rollback.state == State.VERIFYING
            else "resuming the change (it is safe to apply twice)")


async def _record_resume(deps: Deps, rollback: Change, conn: Any = None) -> None:
    log.warning("rollback %s was left %s with no job; %s",
                rollback.id, rollback.state, _resume_what(rollback))
    await deps.audit.record(conn=conn, actor="rollbot", action="resumed",
                            service=rollback.service, change_id=rollback.id,
                            details={"state": rollback.state.value})


async def _note_resume(deps: Deps, rollback: Change) -> None:
    if rollback.thread_ts:
        await in_thread(deps, rollback, recovery_note(
            rollback, f"rollbot restarted while this rollback was {rollback.state.value}; "
                      f"{_resume_what(rollback)}."))


async def resume_orphans(deps: Deps) -> int:
    """Give every unfinished rollback without a job its next job again."""
    resumed: list[Change] = []
    async with deps.pool.connection() as conn, conn.transaction():
        # Serialized across replicas (start-up recovery may meet the periodic one):
        # the next run's query then sees the jobs this one deferred.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RESUME_LOCK,))
        cur = await conn.execute(
            _ORPHANS, _PARAMS | {"states": [s.value for s in _UNFINISHED]})
        for (change_id,) in await cur.fetchall():
            rollback = await deps.changes.get(int(change_id), conn=conn)
            if rollback is None:
                continue
            await _record_resume(deps, rollback, conn)
            task = VERIFY if rollback.state == State.VERIFYING else EXECUTE
            await deps.jobs.configure_task(task, connection=conn).defer_async(
                change_id=rollback.id)
            resumed.append(rollback)
    for rollback in resumed:  # after the commit: Slack is the view
        await _note_resume(deps, rollback)
    return len(resumed)


async def resume_rollouts(deps: Deps) -> int:
    """Give every running rollout without a queued step job its next step job."""
    async with deps.pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RESUME_LOCK,))
        cur = await conn.execute(_STRANDED_ROLLOUTS, _PARAMS)
        stranded = await cur.fetchall()
        for change_id, seq, due in stranded:
            log.warning("rollout of change %s had no step job; deferring one", change_id)
            await deps.jobs.configure_task(ROLLOUT_STEP, connection=conn, schedule_at=due,
                                           ).defer_async(change_id=int(change_id), seq=int(seq))
    return len(stranded)


async def resume_inline(deps: Deps, rollback: Change, *, job_id: int | None) -> bool:
    """Carry on with an unfinished rollback in the calling job (`job_id`, one that
    recovery counts as carrying it: a retried confirm job), unless another job
    carries it. False if it was left alone."""
    if await _has_pending_job(deps, rollback.id, except_job=job_id):
        log.info("rollback %s is carried by another job; leaving it", rollback.id)
        return False
    # Read after the check: a job that finished it committed its state before its status.
    current = await deps.changes.get(rollback.id)
    if current is None or current.state not in _UNFINISHED:
        return False
    rollback = current
    await _record_resume(deps, rollback)
    await _note_resume(deps, rollback)
    if rollback.state == State.VERIFYING:
        await verify.resume_verification(deps, rollback)
        return True
    async with ChangeView(deps, rollback) as view:
        await execute.run_change(deps, rollback, view)
    return True


async def expire_proposals(deps: Deps) -> None:
    for rollback in await deps.changes.expire_proposals(PROPOSAL_TTL_SECONDS):
        await refresh_card(deps, rollback, final_note="Expired: nobody confirmed within "
                                                      f"{PROPOSAL_TTL_SECONDS // 60} minutes.")


async def maintenance(deps: Deps) -> None:
    await retry_stalled_jobs(deps)
    await resume_orphans(deps)
    await resume_rollouts(deps)
    await expire_proposals(deps)
