"""The runbook's rollback blockers, end to end: a target the catalog blocks gets a
card that says why and whom to escalate to, with no Confirm or Gradual; an old target
gets a warning and its card as usual."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import default_world
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import ALICE, _posted, _text

BLOCKERS = """
[services.api.blockers]
escalate_to = ["U0CAROL", "S0DBA"]
blocked_revisions = ["00012-old"]
vulnerable_images = ["europe-west3-docker.pkg.dev/medicalcor-prod/apps/medicalcor-api:v1.2.1"]
breaking_since = { revision = "00014-def", reason = "the partner webhook URL changed" }
warn_older_than_days = 30
"""


@pytest_asyncio.fixture
async def blocking_bot(database_url: str, fresh_redis_url: str) -> AsyncIterator[RunningBot]:
    world = await EmulatedWorld.start(world=default_world(bad_latest=True),
                                      operation_delay=0.02, verification_window=1.5,
                                      verification_interval=0.2, measure_after=(0.0,))
    with world.catalog_path.open("a", encoding="utf-8") as catalog:
        catalog.write(BLOCKERS)
    bot = await start_bot(world, database_url, fresh_redis_url)
    yield bot
    await bot.stop()
    await world.stop()


async def _answer(bot: RunningBot, text: str, expect: str) -> str:
    slack = bot.world.slack
    await slack.send_command(bot.events_url, text, **ALICE)
    call = await slack.wait_for(
        "response_url", lambda c: expect in _text(c), timeout=10)
    return _text(call)


async def test_a_blocked_target_says_why_and_whom_to_escalate_to(
        blocking_bot: RunningBot) -> None:
    # 00013-ghi runs image v1.2.1 (vulnerable) and predates the breaking change.
    card = await _answer(blocking_bot, "api 00013-ghi", "Blocked")
    assert "Old version has a known security vulnerability (vulnerable image)" in card
    assert "the partner webhook URL changed" in card
    assert "escalate to <@U0CAROL>, <!subteam^S0DBA>" in card
    assert "rollback.confirm" not in card and "rollback.gradual" not in card
    assert await blocking_bot.runtime.deps.changes.history("api", limit=1) == []
    assert blocking_bot.world.world.serving("medicalcor-api") == {
        "medicalcor-api-00015-abc": 100}


async def test_a_vulnerable_image_blocks_an_image_change(blocking_bot: RunningBot) -> None:
    card = await _answer(blocking_bot, "api --image v1.2.1", "Blocked")
    assert "vulnerable image" in card


async def test_an_old_target_is_warned_about_and_proposed(blocking_bot: RunningBot) -> None:
    slack = blocking_bot.world.slack
    await slack.send_command(blocking_bot.events_url, "api 00014-def", **ALICE)
    card = await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)
    assert "days old (older than warn_older_than_days = 30)" in _text(card)
    assert "rollback.confirm" in _text(card)
