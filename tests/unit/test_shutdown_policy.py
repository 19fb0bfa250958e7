"""What a shutdown does to the jobs it cuts off, and whether it fits Cloud Run's 10 s
between SIGTERM and SIGKILL."""

from __future__ import annotations

import asyncio

import pytest
from procrastinate.jobs import Job

from bot.config import Settings
from bot.jobs import CUT_OFF_RETRIES, TASKS, RetryWhenCutOff, build_job_app
from bot.jobs_names import CONFIRM, MAINTENANCE
from bot.runtime import WORKER_WIND_DOWN_SECONDS

CLOUD_RUN_STOP_SECONDS = 10.0


def _job(attempts: int) -> Job:
    return Job(id=7, queue="interactive", lock=None, queueing_lock=None, task_name=CONFIRM,
               attempts=attempts)


def test_a_job_cut_off_by_a_shutdown_is_queued_again_at_once() -> None:
    decision = RetryWhenCutOff().get_retry_decision(
        exception=asyncio.CancelledError(), job=_job(attempts=0))
    assert decision is not None
    assert (decision.queue, decision.lock, decision.priority) == (None, None, None)  # as it was


@pytest.mark.parametrize("exception", [ValueError("bug"), TimeoutError()])
def test_a_job_that_failed_is_not_retried(exception: BaseException) -> None:
    assert RetryWhenCutOff().get_retry_decision(exception=exception, job=_job(0)) is None


def test_a_job_cut_off_again_and_again_is_left_to_the_maintenance() -> None:
    strategy = RetryWhenCutOff()
    cut_off = asyncio.CancelledError()
    assert strategy.get_retry_decision(exception=cut_off, job=_job(CUT_OFF_RETRIES - 1))
    assert strategy.get_retry_decision(exception=cut_off, job=_job(CUT_OFF_RETRIES)) is None


def test_every_task_is_queued_again_when_cut_off() -> None:
    app = build_job_app("postgresql://127.0.0.1/unused")  # not opened: no connection
    ours = [*TASKS, MAINTENANCE]
    for name in ours:
        assert isinstance(app.tasks[name].retry_strategy, RetryWhenCutOff), name


def test_the_default_grace_leaves_cloud_run_room_to_close() -> None:
    grace = Settings().shutdown_grace_seconds
    assert 0 < grace + WORKER_WIND_DOWN_SECONDS < CLOUD_RUN_STOP_SECONDS
