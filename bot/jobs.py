"""Work that runs after the ack, as procrastinate jobs.

Jobs live in Postgres, so any replica's in-process worker may run them and a
restart loses nothing. Each job gets the process's Deps through the worker's
additional context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate.jobs import Job

from bot import config_views, history_view, revisions_view, secret_view, switch_views
from bot.changes.kind import ChangeRequest
from bot.deps import from_context
from bot.ids import KindName
from bot.inbound import ButtonClick, OverrideSubmission, SlashCommand
from bot.jobs_names import (
    ANALYSE,
    BASELINE,
    CANCEL,
    CONFIRM,
    EXECUTE,
    FINAL_STEP,
    FOLLOW_UP,
    HISTORY,
    LIST_REVISIONS,
    MAINTENANCE,
    OVERRIDE,
    OVERRIDE_FORM,
    PROPOSE,
    ROLLOUT_CHART,
    ROLLOUT_CONTROL,
    ROLLOUT_STEP,
    SHOW_DIFF,
    SHOW_ENV,
    SHOW_SECRET,
    SWITCHES,
    VERIFY,
    VERIFY_NOW,
)
from bot.stores.db import check_if_idle
from bot.workflow import (
    analyse,
    decide,
    execute,
    follow_up,
    held_step,
    override,
    propose,
    recovery,
    rollout,
    rollout_chart,
    rollout_controls,
    verify,
    verify_now,
)

log = logging.getLogger(__name__)

MAINTENANCE_CRON = "* * * * *"  # every minute: stalled jobs, orphaned rollbacks, expiry
CUT_OFF_RETRIES = 5  # a job stopped this often by shutdowns is left to the maintenance


class RetryWhenCutOff(procrastinate.BaseRetryStrategy):
    """A job still running when its worker's shutdown grace ran out is cancelled:
    queue it again at once, for any replica, as a dead replica's job would be
    (recovery.retry_stalled_jobs). Every job may run twice: a confirm job resumes
    the rollback it confirmed. A job that failed is not retried."""

    def get_retry_decision(self, *, exception: BaseException, job: Job
                           ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError) and job.attempts < CUT_OFF_RETRIES:
            return procrastinate.RetryDecision()
        return None


async def list_revisions_job(context: procrastinate.JobContext, *, service: str,
                             command: dict[str, str]) -> None:
    await revisions_view.show_revisions(from_context(context), service, SlashCommand(**command))


async def history_job(context: procrastinate.JobContext, *, service: str,
                      command: dict[str, str]) -> None:
    await history_view.show_history(from_context(context), service, SlashCommand(**command))


async def show_env_job(context: procrastinate.JobContext, *, service: str, key: str | None,
                       command: dict[str, str]) -> None:
    await config_views.show_env(from_context(context), service, key, SlashCommand(**command))


async def secret_job(context: procrastinate.JobContext, *, secret: str, version: str | None,
                     dry_run: bool, command: dict[str, str]) -> None:
    await secret_view.secret_command(from_context(context), secret, version, dry_run,
                                     SlashCommand(**command))


async def switches_job(context: procrastinate.JobContext, *, intent: str,
                       fields: dict[str, Any], command: dict[str, str]) -> None:
    await switch_views.answer(from_context(context), intent, fields, SlashCommand(**command))


async def show_diff_job(context: procrastinate.JobContext, *, service: str, revision: str,
                        command: dict[str, str]) -> None:
    await config_views.show_diff(from_context(context), service, revision,
                                 SlashCommand(**command))


async def propose_job(context: procrastinate.JobContext, *, service: str, dry_run: bool,
                      command: dict[str, str], kind: str = KindName.TRAFFIC.value,
                      args: dict[str, Any] | None = None, revision: str | None = None
                      ) -> None:
    # `revision`: a job queued before change kinds, always a traffic rollback.
    if args is None:
        args = {"traffic": {revision: 100}} if revision else {}
    await propose.propose(from_context(context), ChangeRequest(kind, service, args, dry_run),
                          SlashCommand(**command))


async def confirm_job(context: procrastinate.JobContext, *, click: dict[str, str],
                      change_id: int | None = None, run_as: str | None = None) -> None:
    # Goes on inline into execute and verify; a retry (stalled job re-queued by
    # recovery) resumes the change its first attempt confirmed.
    job = context.job
    await decide.confirm(from_context(context), ButtonClick(**click), change_id,
                         job_id=job.id, retried=job.attempts > 0, run_as=run_as)


async def cancel_job(context: procrastinate.JobContext, *, click: dict[str, str],
                     change_id: int | None = None) -> None:
    await decide.cancel(from_context(context), ButtonClick(**click), change_id)


async def follow_up_job(context: procrastinate.JobContext, *, click: dict[str, str],
                        change_id: int | None = None) -> None:
    await follow_up.follow_up(from_context(context), ButtonClick(**click), change_id)


async def final_step_job(context: procrastinate.JobContext, *, click: dict[str, str],
                         change_id: int | None = None) -> None:
    await held_step.run(from_context(context), ButtonClick(**click), change_id)


async def override_form_job(context: procrastinate.JobContext, *, click: dict[str, str],
                            change_id: int | None = None) -> None:
    await override.open_modal(from_context(context), ButtonClick(**click), change_id)


async def override_job(context: procrastinate.JobContext, *, submission: dict[str, Any]) -> None:
    await override.apply(from_context(context), OverrideSubmission(**submission))


async def execute_job(context: procrastinate.JobContext, *, change_id: int) -> None:
    await execute.execute(from_context(context), change_id)


async def verify_job(context: procrastinate.JobContext, *, change_id: int) -> None:
    await verify.verify(from_context(context), change_id)


async def baseline_job(context: procrastinate.JobContext, *, change_id: int) -> None:
    await analyse.take_baseline(from_context(context), change_id)


async def analyse_job(context: procrastinate.JobContext, *, change_id: int, index: int,
                      changed_at: str) -> None:
    await analyse.analyse(from_context(context), change_id, index, changed_at)


async def rollout_step_job(context: procrastinate.JobContext, *, change_id: int,
                           seq: int) -> None:
    await rollout.step(from_context(context), change_id, seq)


async def rollout_control_job(context: procrastinate.JobContext, *, click: dict[str, str],
                              change_id: int | None = None) -> None:
    await rollout_controls.control(from_context(context), ButtonClick(**click), change_id)


async def rollout_chart_job(context: procrastinate.JobContext, *, change_id: int,
                            name: str) -> None:
    await rollout_chart.draw(from_context(context), change_id, name)


async def verify_now_job(context: procrastinate.JobContext, *, service: str,
                         command: dict[str, str]) -> None:
    await verify_now.verify_now(from_context(context), service, SlashCommand(**command))


async def maintenance_job(context: procrastinate.JobContext, timestamp: int) -> None:
    await recovery.maintenance(from_context(context))


# name -> (function, queue). Registered per App rather than through a shared
# Blueprint: add_tasks_from rebinds a blueprint's tasks to the first App, which
# breaks a second App in the same process (tests, the shell sandbox).
TASKS: dict[str, tuple[Callable[..., Awaitable[Any]], str]] = {
    LIST_REVISIONS: (list_revisions_job, "interactive"),
    HISTORY: (history_job, "interactive"),
    SHOW_ENV: (show_env_job, "interactive"),
    SHOW_DIFF: (show_diff_job, "interactive"),
    SHOW_SECRET: (secret_job, "interactive"),
    SWITCHES: (switches_job, "interactive"),
    PROPOSE: (propose_job, "interactive"),
    CONFIRM: (confirm_job, "interactive"),
    CANCEL: (cancel_job, "interactive"),
    FOLLOW_UP: (follow_up_job, "interactive"),
    FINAL_STEP: (final_step_job, "interactive"),
    OVERRIDE_FORM: (override_form_job, "interactive"),
    OVERRIDE: (override_job, "interactive"),
    EXECUTE: (execute_job, "rollbacks"),
    VERIFY: (verify_job, "rollbacks"),
    BASELINE: (baseline_job, "rollbacks"),
    ANALYSE: (analyse_job, "analysis"),
    VERIFY_NOW: (verify_now_job, "rollbacks"),
    ROLLOUT_STEP: (rollout_step_job, "rollouts"),
    ROLLOUT_CONTROL: (rollout_control_job, "interactive"),
    ROLLOUT_CHART: (rollout_chart_job, "analysis"),
}


async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)


def _job_pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool[Any]:
    """procrastinate's pool: its queries are single statements, so autocommit
    saves a COMMIT round trip per defer; idle-only checks save another
    (jobs deferred inside our transactions use our own connection)."""
    kwargs["check"] = check_if_idle
    return psycopg_pool.AsyncConnectionPool(**kwargs, configure=_autocommit)


def build_job_app(database_url: str) -> procrastinate.App:
    from procrastinate import PsycopgConnector

    app = procrastinate.App(connector=PsycopgConnector(
        conninfo=database_url, min_size=1, max_size=4, pool_factory=_job_pool))
    retry = RetryWhenCutOff()
    for name, (func, queue) in TASKS.items():
        app.task(name=name, queue=queue, pass_context=True, retry=retry)(func)
    maintenance = app.task(name=MAINTENANCE, queue="maintenance", pass_context=True,
                           retry=retry)(maintenance_job)
    app.periodic(cron=MAINTENANCE_CRON, periodic_id="maintenance")(maintenance)
    return app
