"""Feature flags and kill switches from the channel, end to end: the application's
flags table (real Postgres, its own database), its admin API (the emulator) and its
kill switches (real Redis, another db), apart from rollbot's own stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from bot.changes.model import Change, State
from integrations.emulators.app_world import AppWorld, catalog_groups
from integrations.emulators.google.methods import ACCESS_SECRET_VERSION
from integrations.emulators.google.secret_manager import secret_payload
from integrations.emulators.launcher import DEMO_APPROVERS, EmulatedWorld
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import EmuSecret, EmuSecretVersion, default_world
from tests.e2e.conftest import RunningBot, start_bot

ALICE = {"user_id": "U0ALICE", "channel_id": "C0INCIDENT", "channel_name": "inc-api-outage"}
BOB = "U0BOB"


def _text(call: SlackCall) -> str:
    return str(call.args.get("text", "")) + json.dumps(call.args.get("blocks", []),
                                                       ensure_ascii=False)


@pytest_asyncio.fixture
async def app(postgres_url: str, redis_url: str) -> AsyncIterator[AppWorld]:
    world = await AppWorld.start(postgres_url, redis_url)
    yield world
    await world.stop()


@pytest_asyncio.fixture
async def bot(database_url: str, fresh_redis_url: str, app: AppWorld,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningBot]:
    for name, value in app.env().items():
        monkeypatch.setenv(name, value)
    world = await EmulatedWorld.start(world=default_world(), operation_delay=0.02,
                                      verification_window=1.5, verification_interval=0.2,
                                      measure_after=(0.0,))
    with world.catalog_path.open("a", encoding="utf-8") as catalog:
        catalog.write("\n" + catalog_groups(DEMO_APPROVERS))
    running = await start_bot(world, database_url, fresh_redis_url)
    yield running
    await running.stop()
    await world.stop()


async def _say(bot: RunningBot, command: str, text: str, expect: str,
               method: str = "response_url", user: dict[str, str] = ALICE) -> SlackCall:
    slack = bot.world.slack
    ack = await slack.send_command(bot.events_url, text, command=command, **user)
    if expect in ack.body:
        return SlackCall("ack", {"text": ack.body}, {}, 0.0, ack.status)
    return await slack.wait_for(method, lambda c: c.http_status == 200 and expect in _text(c),
                                timeout=10)


async def _click(bot: RunningBot, card: SlackCall, action: str, user: str) -> None:
    result = await bot.world.slack.click(bot.events_url, action_id=action, user_id=user,
                                         channel_id="C0INCIDENT",
                                         message_ts=card.response["ts"])
    assert result.status == 200


async def _flag(app: AppWorld, name: str) -> bool:
    async with await psycopg.AsyncConnection.connect(app.database_url) as conn:
        row = await (await conn.execute("SELECT enabled FROM feature_flags WHERE name = %s",
                                        (name,))).fetchone()
    assert row is not None
    return bool(row[0])


async def _switch(app: AppWorld, name: str) -> str | None:
    client = Redis.from_url(app.redis_url, decode_responses=True)
    try:
        return await client.get(f"kill_switch:{name}")
    finally:
        await client.aclose()


async def _finished(bot: RunningBot, subject: str, within: float = 15) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        [change] = (await bot.runtime.deps.changes.history_of_subjects([subject], 1)) or [None]
        if change is not None and change.state in (State.SUCCEEDED, State.FAILED):
            return change
        assert loop.time() < deadline, change
        await asyncio.sleep(0.05)


async def test_flag_list_reads_every_group(bot: RunningBot) -> None:
    listed = _text(await _say(bot, "/flag", "list", "Feature flags"))
    assert "🟢 on · `new-scoring-model` · app" in listed
    assert "⚪ off · `ai-triage` · app" in listed
    assert "🟢 on · `remote-ranking` · remote" in listed
    filtered = _text(await _say(bot, "/flag", "list triage", "matching"))
    assert "ai-triage" in filtered and "new-scoring-model" not in filtered


async def test_flag_off_with_two_people_checks_and_undo(bot: RunningBot,
                                                        app: AppWorld) -> None:
    slack = bot.world.slack
    card = await _say(bot, "/flag", "off new-scoring-model", "Rollback plan",
                      method="chat.postMessage")
    assert "Flag `new-scoring-model` (app): on → off · checks: api" in _text(card)
    await _click(bot, card, "rollback.confirm", ALICE["user_id"])
    await slack.wait_for("response_url", lambda c: "second person" in _text(c), timeout=10)
    assert await _flag(app, "new-scoring-model") is True
    await _click(bot, card, "rollback.confirm", BOB)
    announced = await slack.wait_for("chat.postMessage", lambda c: "Turning flag" in _text(c),
                                     timeout=10)
    assert "requested by <@U0ALICE>, confirmed by <@U0BOB>" in _text(announced)
    done = await _finished(bot, "flag:app/new-scoring-model")
    # api's checks passed; the deep analysis may then call it degraded (few requests)
    assert done.state == State.SUCCEEDED and done.verdict in ("verified", "degraded"), done
    verified = [e for e in await bot.runtime.deps.audit.for_change(done.id)
                if e.action == "verified"]
    names = {c["name"] for c in verified[0].details["checks"]}
    assert {"read-back", "health", "ready"} <= names
    assert await _flag(app, "new-scoring-model") is False
    events = [e.action for e in await bot.runtime.deps.audit.for_change(done.id)]
    assert "flag_change_started" in events and "flag_changed" in events

    undo_card = await slack.wait_for("chat.update", lambda c: "change.undo" in _text(c)
                                     and c.args.get("ts") == card.response["ts"], timeout=10)
    await slack.click(bot.events_url, action_id="change.undo", user_id="U0ALICE",
                      channel_id="C0INCIDENT", message_ts=undo_card.args["ts"])
    back = await slack.wait_for("chat.postMessage", lambda c: "off → on" in _text(c),
                                timeout=10)
    await _click(bot, back, "rollback.confirm", BOB)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await _flag(app, "new-scoring-model"):
        assert loop.time() < deadline, "the undo did not turn the flag back on"
        await asyncio.sleep(0.05)
    history = _text(await _say(bot, "/flag", "history new-scoring-model", "flag new-scoring"))
    assert history.count("new-scoring-model") >= 2
    everything = _text(await _say(bot, "/rollback", "history api", "Rollback history: api"))
    assert "flag new-scoring-model (app): on → off" in everything  # with every kind


async def test_a_flag_behind_the_admin_api_with_no_services(bot: RunningBot,
                                                            app: AppWorld) -> None:
    card = await _say(bot, "/flag", "off remote-ranking", "Rollback plan",
                      method="chat.postMessage")
    assert "checks: none (the read-back alone)" in _text(card)
    await _click(bot, card, "rollback.confirm", BOB)
    done = await _finished(bot, "flag:remote/remote-ranking")
    assert done.state == State.SUCCEEDED and app.api.flags["remote-ranking"] is False
    verdict = await bot.world.slack.wait_for(
        "chat.postMessage", lambda c: "no service's checks follow" in _text(c), timeout=10)
    assert "read back" in _text(verdict)


async def test_an_api_outage_at_confirm_changes_nothing_and_says_so(
        bot: RunningBot, app: AppWorld) -> None:
    card = await _say(bot, "/flag", "off remote-ranking", "Rollback plan",
                      method="chat.postMessage")
    app.api.inject(503, count=6)
    await _click(bot, card, "rollback.confirm", BOB)
    done = await _finished(bot, "flag:remote/remote-ranking")
    assert done.state == State.FAILED and "unreachable" in (done.error or "")
    await bot.world.slack.wait_for("chat.postMessage",
                                   lambda c: "Nothing was changed" in _text(c), timeout=10)
    assert app.api.flags["remote-ranking"] is True


async def test_unknown_names_and_bad_input_say_what_is_valid(bot: RunningBot) -> None:
    unknown = _text(await _say(bot, "/flag", "off new-scoring", "Unknown flag"))
    assert "`new-scoring-model`" in unknown
    switch = _text(await _say(bot, "/killswitch", "ai_scorin on", "Unknown kill switch"))
    assert "`ai_scoring`" in switch
    assert "needs a command" in _text(await _say(bot, "/flag", "", "needs a command"))
    elsewhere = await bot.world.slack.send_command(
        bot.events_url, "off ai-triage", command="/flag", user_id="U0ALICE",
        channel_id="C0GENERAL", channel_name="general")
    assert "incident channels" in elsewhere.body
    listed = await bot.world.slack.send_command(
        bot.events_url, "list", command="/killswitch", user_id="U0ALICE",
        channel_id="C0GENERAL", channel_name="general")
    assert listed.status == 200 and not listed.body.strip()  # lists work anywhere


async def test_a_kill_switch_on_by_one_person_off_by_two(bot: RunningBot,
                                                        app: AppWorld) -> None:
    slack = bot.world.slack
    await _say(bot, "/killswitch", "ai_scoring on", "Kill switch `ai_scoring` (app): off → on",
               method="chat.postMessage")
    announced = await slack.wait_for("chat.postMessage",
                                     lambda c: "Turning kill switch" in _text(c), timeout=10)
    assert "requested by <@U0ALICE>, confirmed by <@U0ALICE>" in _text(announced)
    done = await _finished(bot, "killswitch:app/ai_scoring")
    assert done.state == State.SUCCEEDED, done.error
    assert await _switch(app, "ai_scoring") == "true"
    confirm = [e for e in await bot.runtime.deps.audit.for_change(done.id)
               if e.action == "confirm"]
    assert confirm[0].actor == "U0ALICE" and confirm[0].details["one_person"] is True

    card = await _say(bot, "/killswitch", "ai_scoring off", "(app): on → off",
                      method="chat.postMessage")
    await _click(bot, card, "rollback.confirm", ALICE["user_id"])
    await slack.wait_for("response_url", lambda c: "second person" in _text(c), timeout=10)
    assert await _switch(app, "ai_scoring") == "true"
    await _click(bot, card, "rollback.confirm", BOB)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await _switch(app, "ai_scoring") is not None:
        assert loop.time() < deadline, "the switch was not released"
        await asyncio.sleep(0.05)


async def test_list_scans_and_status_shows_the_raw_value(bot: RunningBot,
                                                         app: AppWorld) -> None:
    client = Redis.from_url(app.redis_url, decode_responses=True)
    try:
        await client.set("kill_switch:payments", "yes")
        await client.set("kill_switch:legacy_export", "0")
    finally:
        await client.aclose()
    listed = _text(await _say(bot, "/killswitch", "list", "Kill switches"))
    assert "🔴 ON · `payments`" in listed and "⚪ off · `ai_scoring`" in listed
    assert "`legacy_export` · app · not in the catalog" in listed
    status = _text(await _say(bot, "/killswitch", "payments status", "kill_switch:payments"))
    assert "🔴 ON" in status and "`yes`" in status


async def test_an_unreachable_redis_changes_nothing_and_says_so(
        bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_REDIS_URL", "redis://127.0.0.1:1/1")
    refused = _text(await _say(bot, "/killswitch", "ai_scoring on", "Couldn't read"))
    assert "Nothing was changed" in refused
    assert await bot.runtime.deps.changes.history_of_subjects(["killswitch:app/ai_scoring"]) \
        == []


async def test_a_flag_is_not_held_up_by_a_rollback_of_its_service(bot: RunningBot) -> None:
    """A flag only has its services' checks follow: a rollback proposed for api (its
    slot taken) does not stop the fastest rollback there is."""
    slack = bot.world.slack
    await slack.send_command(bot.events_url, "api 00013-ghi", **ALICE)
    await slack.wait_for("chat.postMessage", lambda c: "Rollback plan: api" in _text(c),
                         timeout=10)
    card = await _say(bot, "/flag", "off ai-triage", "already off")  # nothing to do
    assert "Nothing to do" in _text(card)
    await _say(bot, "/flag", "on ai-triage", "(app): off → on", method="chat.postMessage")


async def test_a_flag_changed_by_someone_else_since_the_card_is_drift(
        bot: RunningBot, app: AppWorld) -> None:
    card = await _say(bot, "/flag", "off new-scoring-model", "Rollback plan",
                      method="chat.postMessage")
    async with await psycopg.AsyncConnection.connect(app.database_url, autocommit=True) as c:
        await c.execute("UPDATE feature_flags SET enabled = false "
                        "WHERE name = 'new-scoring-model'")
        await c.execute("UPDATE feature_flags SET enabled = true "
                        "WHERE name = 'new-scoring-model'")  # flipped and back: no drift
    await _click(bot, card, "rollback.confirm", BOB)
    assert (await _finished(bot, "flag:app/new-scoring-model")).state == State.SUCCEEDED

    card = await _say(bot, "/flag", "on new-scoring-model", "off → on",
                      method="chat.postMessage")
    async with await psycopg.AsyncConnection.connect(app.database_url, autocommit=True) as c:
        await c.execute("UPDATE feature_flags SET enabled = true "
                        "WHERE name = 'new-scoring-model'")  # someone else turned it on
    await _click(bot, card, "rollback.confirm", BOB)
    await bot.world.slack.wait_for(
        "chat.postMessage", lambda c: "Stopped before changing anything" in _text(c),
        timeout=10)


async def test_only_the_groups_approvers_may_confirm(bot: RunningBot, app: AppWorld) -> None:
    slack = bot.world.slack
    slack.add_user("U0DAVE", "dave", "Dave Non-Approver")
    card = await _say(bot, "/flag", "off new-scoring-model", "Rollback plan",
                      method="chat.postMessage")
    await _click(bot, card, "rollback.confirm", "U0DAVE")
    refusal = await slack.wait_for("response_url", lambda c: "approvers" in _text(c),
                                   timeout=10)
    assert "flag group app" in _text(refusal)
    assert await _flag(app, "new-scoring-model") is True


async def test_the_admin_api_key_from_secret_manager_is_used_and_never_shown(
        database_url: str, fresh_redis_url: str, app: AppWorld,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in app.env().items():
        monkeypatch.setenv(name, value)
    world = default_world()
    world.secrets["FLAGS_ADMIN_KEY"] = EmuSecret(
        "FLAGS_ADMIN_KEY", {"1": EmuSecretVersion("1")})
    app.api.api_key = secret_payload("FLAGS_ADMIN_KEY", "1").decode()
    emulated = await EmulatedWorld.start(world=world, operation_delay=0.02,
                                         verification_window=1.5, verification_interval=0.2)
    with emulated.catalog_path.open("a", encoding="utf-8") as catalog:
        catalog.write(
            '\n[flags.remote]\nbackend = "api"\nbase_url_env = "APP_ADMIN_API_URL"\n'
            f'api_key_secret = "projects/{world.project}/secrets/FLAGS_ADMIN_KEY/versions/'
            'latest"\napprovers = ["U0BOB"]\n')
    running = await start_bot(emulated, database_url, fresh_redis_url)
    try:
        listed = _text(await _say(running, "/flag", "list", "Feature flags"))
        assert "`remote-ranking`" in listed and app.api.api_key not in listed
        assert emulated.google.calls_to(ACCESS_SECRET_VERSION)
    finally:
        await running.stop()
        await emulated.stop()


async def test_a_double_click_on_two_replicas_flips_once(
        bot: RunningBot, app: AppWorld, database_url: str, fresh_redis_url: str) -> None:
    second = await start_bot(bot.world, database_url, fresh_redis_url)
    try:
        card = await _say(bot, "/flag", "off new-scoring-model", "Rollback plan",
                          method="chat.postMessage")
        results = await asyncio.gather(*(bot.world.slack.click(
            url, action_id="rollback.confirm", user_id=BOB, channel_id="C0INCIDENT",
            message_ts=card.response["ts"]) for url in (bot.events_url, second.events_url)))
        assert [r.status for r in results] == [200, 200]
        done = await _finished(bot, "flag:app/new-scoring-model")
        await asyncio.sleep(0.3)  # room for a (wrong) second change
    finally:
        await second.stop()
    assert done.state == State.SUCCEEDED and await _flag(app, "new-scoring-model") is False
    events = [e.action for e in await bot.runtime.deps.audit.for_change(done.id)]
    assert events.count("flag_changed") == 1 and events.count("confirm") == 1


@pytest.mark.parametrize("ours", [True, False])
async def test_a_restart_after_the_write_resumes_or_says_it_moved(
        bot: RunningBot, app: AppWorld, database_url: str, fresh_redis_url: str,
        ours: bool) -> None:
    """A crash after the flag was written, before the row moved on: the restart finds the
    value it wrote (its mark set before the write) and verifies; without the mark, the
    value moved since the card: drift, nothing changed."""
    from tests.e2e.test_inline_flow import _forget_stopped

    card = await _say(bot, "/flag", "off new-scoring-model", "Rollback plan",
                      method="chat.postMessage")
    [change] = await bot.runtime.deps.changes.history_of_subjects(
        ["flag:app/new-scoring-model"], 1)
    await bot.stop()
    _forget_stopped(bot)
    async with await psycopg.AsyncConnection.connect(app.database_url, autocommit=True) as c:
        await c.execute("UPDATE feature_flags SET enabled = false "
                        "WHERE name = 'new-scoring-model'")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM procrastinate_jobs")
        await conn.execute("UPDATE changes SET state = 'executing', confirmed_by = 'U0BOB', "
                           "after = %s WHERE id = %s",
                           (json.dumps({"writing": False}) if ours else None, change.id))
    restarted = await start_bot(bot.world, database_url, fresh_redis_url)
    try:
        done = await _finished(restarted, "flag:app/new-scoring-model")
    finally:
        await restarted.stop()
    assert card and done.id == change.id
    if ours:
        assert done.state == State.SUCCEEDED, done.error
    else:
        assert done.state == State.FAILED and (done.error or "").startswith("plan out of date")
    assert await _flag(app, "new-scoring-model") is False


async def test_a_name_in_two_groups_asks_which(bot: RunningBot, app: AppWorld) -> None:
    async with await psycopg.AsyncConnection.connect(app.database_url, autocommit=True) as c:
        await c.execute("INSERT INTO feature_flags VALUES ('remote-ranking', true, now())")
    asked = _text(await _say(bot, "/flag", "off remote-ranking", "2 groups"))
    assert "`app/remote-ranking`" in asked and "`remote/remote-ranking`" in asked
    card = await _say(bot, "/flag", "off remote/remote-ranking", "Rollback plan",
                      method="chat.postMessage")
    assert "(remote): on → off" in _text(card)


async def test_an_unreachable_flags_database_changes_nothing_and_says_so(
        bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://app@127.0.0.1:1/app")
    refused = _text(await _say(bot, "/flag", "off new-scoring-model", "Couldn't find flag"))
    assert "unreachable" in refused and "Nothing was changed" in refused
    listed = _text(await _say(bot, "/flag", "list", "Feature flags"))
    assert "group app: the flags database is unreachable" in listed
    assert "`remote-ranking`" in listed  # the other group still answers


async def test_a_dry_run_shows_the_card_to_the_requester_only(bot: RunningBot,
                                                               app: AppWorld) -> None:
    card = _text(await _say(bot, "/flag", "off new-scoring-model --dry-run", "DRY RUN"))
    assert "Flag `new-scoring-model` (app): on → off" in card and "rollback.confirm" not in card
    assert await _flag(app, "new-scoring-model") is True
    assert await bot.runtime.deps.changes.history_of_subjects(
        ["flag:app/new-scoring-model"]) == []
