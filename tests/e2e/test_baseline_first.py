"""The baseline comes first: a Confirm clicked the moment the card appears waits for
the baseline (up to `baseline_wait_seconds`); past that, or when the baseline's job
ended without one, the change goes on and the thread says there is no baseline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from bot.changes.model import Change, State
from bot.jobs_names import BASELINE
from integrations.emulators.google.monitoring import LIST_TIME_SERIES
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import default_world
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import CONFIRM, _click, _posted, _propose


async def _bot(database_url: str, redis_url: str, *,
               baseline_wait: float) -> tuple[EmulatedWorld, RunningBot]:
    world = await EmulatedWorld.start(
        world=default_world(bad_latest=True), operation_delay=0.02,
        verification_window=1.5, verification_interval=0.2, measure_after=(0.0,),
        scrape_interval=0.2, baseline_wait=baseline_wait)
    return world, await start_bot(world, database_url, redis_url)


@pytest_asyncio.fixture
async def slow_baseline(database_url: str, fresh_redis_url: str
                        ) -> AsyncIterator[tuple[EmulatedWorld, RunningBot]]:
    world, bot = await _bot(database_url, fresh_redis_url, baseline_wait=60.0)
    yield world, bot
    await bot.stop()
    await world.stop()


async def _finished(bot: RunningBot, within: float = 20) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        change = (await bot.runtime.deps.changes.history("api", limit=1))[0]
        if change.state in (State.SUCCEEDED, State.FAILED):
            return change
        assert loop.time() < deadline, f"stuck in {change.state}"
        await asyncio.sleep(0.05)


async def test_a_confirm_before_the_baseline_waits_for_it(
        slow_baseline: tuple[EmulatedWorld, RunningBot]) -> None:
    world, bot = slow_baseline
    # The baseline's two Monitoring reads take a second and a half.
    world.google.faults.delay(LIST_TIME_SERIES, 1.5, count=2)
    card = await _propose(bot)
    await _click(bot, card, CONFIRM, "U0BOB")  # the moment the card appears
    done = await _finished(bot)
    assert done.state == State.SUCCEEDED, done.error
    # A baseline is stored only while the change has not begun: it came first.
    assert done.baseline is not None and done.baseline["requests"] is not None
    assert not [c for c in world.slack.calls_to("chat.postMessage")
                if "No baseline" in str(c.args.get("text"))]


async def test_past_its_wait_the_change_goes_on_and_says_there_is_no_baseline(
        database_url: str, fresh_redis_url: str) -> None:
    world, bot = await _bot(database_url, fresh_redis_url, baseline_wait=0.3)
    try:
        world.google.faults.delay(LIST_TIME_SERIES, 3.0, count=2)
        card = await _propose(bot)
        await _click(bot, card, CONFIRM, "U0BOB")
        note = await world.slack.wait_for(
            "chat.postMessage", _posted("No baseline: it was not measured within 0.3 s"),
            timeout=10)
        assert note.args.get("thread_ts")
        done = await _finished(bot)
        assert done.state == State.SUCCEEDED and done.baseline is None
    finally:
        await bot.stop()
        await world.stop()


async def test_a_baseline_job_that_ended_without_one_does_not_hold_the_change(
        slow_baseline: tuple[EmulatedWorld, RunningBot]) -> None:
    world, bot = slow_baseline
    world.google.faults.delay(LIST_TIME_SERIES, 3.0, count=2)
    card = await _propose(bot)
    deps = bot.runtime.deps
    # As if the baseline's job had failed: no longer queued or running, no baseline.
    async with deps.pool.connection() as conn:
        await conn.execute("UPDATE procrastinate_jobs SET status = 'failed' "
                           "WHERE task_name = %s", (BASELINE,))
    await _click(bot, card, CONFIRM, "U0BOB")
    # Said long before the 60 s wait would end: the click did not wait for a job
    # that is over.
    await world.slack.wait_for("chat.postMessage", _posted(
        "No baseline: none is being measured"), timeout=15)
    done = await _finished(bot)
    assert done.state == State.SUCCEEDED
