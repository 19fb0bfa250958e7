"""Crash recovery and housekeeping, run at start and periodically by any replica.

- Jobs of a replica that died (no worker heartbeat) are stalled: procrastinate
  finds them and we hand them back to the queue, so another replica resumes.
- A rollback left in confirmed/executing/verifying with no job queued or running
  (e.g. the process died between two steps) gets its job again, with a note in
  its thread. Never silently.
- Unanswered proposals expire, so a forgotten plan card doesn't hold the slot.
"""

from __future__ import annotations

import logging

from bot.deps import Deps
from bot.jobs_names import EXECUTE, VERIFY
from bot.messages.thread import recovery_note
from bot.rollbacks.model import State
from bot.workflow.posting import in_thread, refresh_card
from bot.workflow.propose import PROPOSAL_TTL_SECONDS

log = logging.getLogger(__name__)

STALLED_AFTER_SECONDS = 30.0

_PENDING_JOB = """
SELECT 1 FROM procrastinate_jobs
WHERE task_name = ANY(%(tasks)s) AND status IN ('todo', 'doing')
  AND (args->>'rollback_id')::bigint = %(rollback_id)s
LIMIT 1
"""


async def retry_stalled_jobs(deps: Deps) -> int:
    stalled = list(await deps.jobs.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=STALLED_AFTER_SECONDS))
    for job in stalled:
        log.warning("retrying stalled job %s (%s)", job.id, job.task_name)
        await deps.jobs.job_manager.retry_job(job)
    return len(stalled)


async def _has_pending_job(deps: Deps, rollback_id: int) -> bool:
    async with deps.pool.connection() as conn:
        cur = await conn.execute(
            _PENDING_JOB, {"tasks": [EXECUTE, VERIFY], "rollback_id": rollback_id})
        return await cur.fetchone() is not None


async def resume_orphans(deps: Deps) -> int:
    """Give every unfinished rollback without a job its next job again."""
    resumed = 0
    for rollback in await deps.rollbacks.unfinished():
        if await _has_pending_job(deps, rollback.id):
            continue
        task = VERIFY if rollback.state == State.VERIFYING else EXECUTE
        what = ("re-running verification" if task == VERIFY
                else "resuming the traffic change (it is safe to apply twice)")
        log.warning("rollback %s was left %s with no job; %s", rollback.id, rollback.state, what)
        await deps.audit.record(actor="rollbot", action="resumed", service=rollback.service,
                                rollback_id=rollback.id, details={"state": rollback.state.value})
        if rollback.thread_ts:
            await in_thread(deps, rollback, recovery_note(
                rollback, f"rollbot restarted while this rollback was {rollback.state.value}; "
                          f"{what}."))
        await deps.jobs.configure_task(task).defer_async(rollback_id=rollback.id)
        resumed += 1
    return resumed


async def expire_proposals(deps: Deps) -> None:
    for rollback in await deps.rollbacks.expire_proposals(PROPOSAL_TTL_SECONDS):
        await refresh_card(deps, rollback, final_note="Expired: nobody confirmed within "
                                                      f"{PROPOSAL_TTL_SECONDS // 60} minutes.")


async def maintenance(deps: Deps) -> None:
    await retry_stalled_jobs(deps)
    await resume_orphans(deps)
    await expire_proposals(deps)
