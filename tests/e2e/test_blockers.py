"""The runbook's rollback blockers, end to end: a target the catalog blocks gets a
card in the channel that says why and whom to escalate to, with no Confirm or Gradual
(a forged click is refused); a rotated secret offers to re-enable the old version
first; an old target gets a warning and its card as usual."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio

from bot.changes.model import State
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import default_world
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import ALICE, UPDATE_SERVICE, _posted, _text

BOB = "U0BOB"

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
    return _text(await _card(bot, text, expect))


async def _card(bot: RunningBot, text: str, expect: str) -> SlackCall:
    slack = bot.world.slack
    await slack.send_command(bot.events_url, text, **ALICE)
    return await slack.wait_for("chat.postMessage", _posted(expect), timeout=10)


async def _click(bot: RunningBot, card: SlackCall, action: str, user: str) -> None:
    result = await bot.world.slack.click(bot.events_url, action_id=action, user_id=user,
                                         channel_id="C0INCIDENT",
                                         message_ts=card.response["ts"])
    assert result.status == 200


async def test_a_blocked_target_says_why_and_whom_to_escalate_to(
        blocking_bot: RunningBot) -> None:
    # 00013-ghi runs image v1.2.1 (vulnerable) and predates the breaking change.
    card = await _answer(blocking_bot, "api 00013-ghi", "Blocked")
    assert "Old version has a known security vulnerability (vulnerable image)" in card
    assert "the partner webhook URL changed" in card
    assert "escalate to <@U0CAROL>, <!subteam^S0DBA>" in card
    assert "rollback.confirm" not in card and "rollback.gradual" not in card
    assert "rollback.override" in card and "rollback.cancel" in card
    [change] = await blocking_bot.runtime.deps.changes.history("api", limit=1)
    events = await blocking_bot.runtime.deps.audit.for_change(change.id)
    assert "Old version has a known security vulnerability (vulnerable image)" in (
        events[0].details["blockers"])
    assert blocking_bot.world.world.serving("medicalcor-api") == {
        "medicalcor-api-00015-abc": 100}


async def test_no_way_of_confirming_gets_past_a_blocker(blocking_bot: RunningBot) -> None:
    slack = blocking_bot.world.slack
    card = await _card(blocking_bot, "api 00013-ghi", "Blocked")
    for action in ("rollback.confirm", "rollback.gradual"):  # forged: not on the card
        result = await slack.click(blocking_bot.events_url, action_id=action,
                                   value=str(card.args["blocks"][-1]["elements"][0]["value"]),
                                   user_id=BOB, channel_id="C0INCIDENT",
                                   message_ts=card.response["ts"])
        assert result.status == 200
    await slack.wait_for("response_url", lambda c: len(
        [r for r in slack.calls_to("response_url") if "is blocked" in _text(r)]) == 2,
        timeout=10)
    [change] = await blocking_bot.runtime.deps.changes.history("api", limit=1)
    assert change.state == State.PROPOSED
    assert not blocking_bot.world.google.calls_to(UPDATE_SERVICE)
    denied = [e for e in await blocking_bot.runtime.deps.audit.for_change(change.id)
              if e.outcome == "denied"]
    assert [e.details["reason"] for e in denied] == ["blocked", "blocked"]


async def test_a_rotated_secret_offers_to_re_enable_the_old_version(
        running_bot: RunningBot) -> None:
    # 00013-ghi reads API_SECRET_KEY version 1, disabled since the rotation.
    slack, world = running_bot.world.slack, running_bot.world.world
    card = await _card(running_bot, "api 00013-ghi", "Blocked")
    assert "Secrets were rotated: re-enable the old version first" in _text(card)
    assert "now disabled" in _text(card)
    await _click(running_bot, card, "change.remedy", ALICE["user_id"])
    remedy = await slack.wait_for("chat.postMessage",
                                  _posted("enable version 1"), timeout=10)
    assert "1. Enable API_SECRET_KEY version 1" in _text(remedy)
    assert "Pin" not in _text(remedy)  # enable only
    blocked = await running_bot.runtime.deps.changes.get(
        int(card.args["blocks"][-1]["elements"][0]["value"]))
    assert blocked is not None and blocked.state == State.CANCELLED  # superseded
    await _click(running_bot, remedy, "rollback.confirm", BOB)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while world.secrets["API_SECRET_KEY"].versions["1"].state != "ENABLED":
        assert loop.time() < deadline, "version 1 was not enabled"
        await asyncio.sleep(0.05)
    assert world.serving("medicalcor-api") == {"medicalcor-api-00015-abc": 100}
    await _finished_remedy(running_bot)
    slack = running_bot.world.slack
    earlier = {c.response.get("ts") for c in slack.calls_to("chat.postMessage")}
    await slack.send_command(running_bot.events_url, "api 00013-ghi", **ALICE)
    again = _text(await slack.wait_for("chat.postMessage", lambda c: (
        c.response.get("ts") not in earlier and "Rollback plan: api" in _text(c)), timeout=10))
    assert "Secrets were rotated" not in again and "rollback.confirm" in again


async def _finished_remedy(bot: RunningBot) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        [change] = await bot.runtime.deps.changes.history("api", limit=1)
        if change.kind == "secret" and change.state in (State.SUCCEEDED, State.FAILED):
            return
        assert loop.time() < deadline, change
        await asyncio.sleep(0.05)


async def test_a_vulnerable_image_blocks_an_image_change(blocking_bot: RunningBot) -> None:
    card = await _answer(blocking_bot, "api --image v1.2.1", "Blocked")
    assert "vulnerable image" in card


async def test_an_old_target_is_warned_about_and_proposed(blocking_bot: RunningBot) -> None:
    slack = blocking_bot.world.slack
    await slack.send_command(blocking_bot.events_url, "api 00014-def", **ALICE)
    card = await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)
    assert "days old (older than warn_older_than_days = 30)" in _text(card)
    assert "rollback.confirm" in _text(card)


def _schema_labels(bot: RunningBot) -> None:
    """A label on two revisions, an annotation on the third (either names the schema);
    00012 has neither."""
    for suffix, version in (("00013-ghi", "3"), ("00014-def", "4"), ("00015-abc", "12")):
        revision = bot.world.world.services["medicalcor-api"].revisions[
            f"medicalcor-api-{suffix}"]
        if suffix == "00015-abc":
            revision.annotations = {**revision.annotations, "schema-version": version}
        else:
            revision.labels = {**revision.labels, "schema-version": version}


async def _bot_with(database_url: str, redis_url: str, toml: str) -> RunningBot:
    world = await EmulatedWorld.start(world=default_world(), operation_delay=0.02,
                                      verification_window=1.5, verification_interval=0.2,
                                      measure_after=(0.0,))
    with world.catalog_path.open("a", encoding="utf-8") as catalog:
        catalog.write(toml)
    return await start_bot(world, database_url, redis_url)


async def _stopped(bot: RunningBot) -> None:
    await bot.stop()
    await bot.world.stop()


async def test_a_serving_schema_newer_than_the_target_knows_blocks(
        database_url: str, fresh_redis_url: str) -> None:
    bot = await _bot_with(database_url, fresh_redis_url,
                          '[services.api.blockers]\nschema_label = "schema-version"\n')
    try:
        _schema_labels(bot)
        card = await _answer(bot, "api 00014-def", "Blocked")
        assert "Database schema is incompatible with old code" in card
        assert "knows schema 4, the serving revision (medicalcor-api-00015-abc) is at 12" in card
        assert "coordinate with the DBA" in card
        unknown = bot.world.world.services["medicalcor-api"].revisions[
            "medicalcor-api-00013-ghi"]
        unknown.labels = {k: v for k, v in unknown.labels.items() if k != "schema-version"}
        bot.world.world.secrets["API_SECRET_KEY"].versions["1"].state = "ENABLED"
        [change] = await bot.runtime.deps.changes.history("api", limit=1)
        await bot.runtime.deps.changes.transition(change.id, State.PROPOSED, State.CANCELLED)
        warned = await _answer(bot, "api 00013-ghi", "schema unknown")
        assert "Blocked" not in warned  # a warning only
    finally:
        await _stopped(bot)


async def test_the_migrations_table_blocks_a_target_built_before_a_migration(
        database_url: str, fresh_redis_url: str, app_database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with await psycopg.AsyncConnection.connect(app_database_url, autocommit=True) as app:
        await app.execute("CREATE TABLE schema_migrations (version int, applied_at timestamptz)")
        await app.execute("INSERT INTO schema_migrations VALUES (12, now())")
    monkeypatch.setenv("APP_DATABASE_URL", app_database_url)
    bot = await _bot_with(database_url, fresh_redis_url, (
        '[services.api.blockers]\nschema_query = "SELECT max(applied_at) FROM '
        'schema_migrations"\nschema_database_url_env = "APP_DATABASE_URL"\n'))
    try:
        card = await _answer(bot, "api 00014-def", "Blocked")
        assert "a migration ran at" in card and "after medicalcor-api-00014-def was built" in card
        other = await _answer(bot, "web 00013-pqr", "web →")
        assert "Blocked" not in other  # web has no schema check
    finally:
        await _stopped(bot)


async def test_an_unreachable_migrations_table_is_a_warning_not_a_pass(
        database_url: str, fresh_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://rollbot@127.0.0.1:1/app")
    bot = await _bot_with(database_url, fresh_redis_url, (
        '[services.api.blockers]\nschema_query = "SELECT 1"\n'
        'schema_database_url_env = "APP_DATABASE_URL"\n'))
    try:
        card = await _answer(bot, "api 00014-def", "Rollback plan")
        assert "The schema check could not run" in card
        assert "check for migrations by hand" in card
    finally:
        await _stopped(bot)


async def test_a_target_that_is_not_ready_is_a_warning(running_bot: RunningBot) -> None:
    running_bot.world.world.services["medicalcor-api"].revisions[
        "medicalcor-api-00014-def"].ready = False
    card = await _answer(running_bot, "api 00014-def", "Rollback plan")
    assert "The target is not Ready" in card and "Cloud Run may not send it traffic" in card
    assert "rollback.confirm" in card and "Blocked" not in card
