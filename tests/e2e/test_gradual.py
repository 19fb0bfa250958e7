"""Gradual rollback end to end: a 50/50 split judged by per-revision metrics from the
Monitoring emulator (the target app's simulated traffic), with Promote, Abort, Pause
and Resume, against real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio

from bot.changes.model import Change, State, Verdict
from bot.ids import RollbackAction, RolloutAction
from bot.jobs_names import ROLLOUT_STEP
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import EmuTrafficTarget, default_world
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_inline_flow import _forget_stopped
from tests.e2e.test_rollback_flow import (
    API,
    SERVING,
    TARGET,
    UPDATE_SERVICE,
    _click,
    _posted,
    _propose,
    _text,
)

GRADUAL = RollbackAction.GRADUAL.value
TAG = "rollbot-target"


async def _world(**overrides: object) -> EmulatedWorld:
    options: dict[str, object] = {
        "world": default_world(bad_latest=True), "operation_delay": 0.02,
        "verification_window": 1.5, "verification_interval": 0.2,
        "measure_after": (0.0,), "scrape_interval": 0.2, "min_requests": 3,
        "gradual": (2.5, 1.0)}
    options.update(overrides)
    return await EmulatedWorld.start(**options)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def gradual_bot(database_url: str, fresh_redis_url: str) -> AsyncIterator[RunningBot]:
    world = await _world()
    bot = await start_bot(world, database_url, fresh_redis_url)
    yield bot
    await bot.stop()
    await world.stop()


async def _change(bot: RunningBot) -> Change:
    changes = await bot.runtime.deps.changes.history("api", limit=1)
    assert changes, "no change row"
    return changes[0]


async def _until(bot: RunningBot, test, within: float = 20) -> Change:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        change = await _change(bot)
        if test(change):
            return change
        assert loop.time() < deadline, f"change stuck: {change.state} {change.rollout}"
        await asyncio.sleep(0.05)


def _tags(world: EmulatedWorld) -> dict[str, str]:
    service = world.world.services[API]
    return {t.tag: t.revision or "" for t in service.traffic if t.tag}


async def _started(bot: RunningBot) -> tuple[SlackCall, Change]:
    """A gradual rollout at its first step, its card showing the rollout's buttons."""
    card = await _propose(bot, "api 00014-def --gradual")
    await _click(bot, card, GRADUAL, "U0BOB")
    change = await _until(bot, lambda c: c.state == State.ROLLING_OUT)
    await bot.world.slack.wait_for(
        "chat.update", lambda c: c.args.get("ts") == card.response["ts"]
        and RolloutAction.PROMOTE.value in _text(c), timeout=10)
    return card, change


async def test_the_card_offers_gradual_and_a_gradual_proposal_prefers_it(
        gradual_bot: RunningBot) -> None:
    card = await _propose(gradual_bot, "api 00014-def --gradual")
    buttons = [e for b in card.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    by_action = {b["action_id"]: b for b in buttons}
    assert list(by_action) == [RollbackAction.CONFIRM.value, GRADUAL,
                               RollbackAction.CANCEL.value]
    assert by_action[GRADUAL].get("style") == "primary"
    assert "style" not in by_action[RollbackAction.CONFIRM.value]
    assert "each step held 3 s, analysed every 1 s" in _text(card)


async def test_a_rollout_that_passes_promotes_and_verifies(gradual_bot: RunningBot) -> None:
    world = gradual_bot.world
    _, change = await _started(gradual_bot)
    assert change.kind == "gradual" and change.confirmed_by == "U0BOB"
    assert world.world.serving(API) == {TARGET: 50, SERVING: 50}
    assert _tags(world) == {TAG: TARGET}

    done = await _until(gradual_bot, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
    assert done.state == State.SUCCEEDED, done.error
    assert world.world.serving(API) == {TARGET: 100}
    assert _tags(world) == {}, "the tag is removed when the rollout ends"
    assert done.rollout is not None
    analyses = done.rollout["analyses"]
    assert analyses and all(a["outcome"] == "pass" for a in analyses)
    assert analyses[0]["apart"] is True
    assert analyses[0]["target"]["requests"] >= 3
    lines = [c for c in world.slack.calls_to("chat.postMessage")
             if "Analysis 1" in _text(c)]
    assert len(lines) == 1 and "console.cloud.google.com/run/detail" in _text(lines[0])
    actions = [row.action for row in await gradual_bot.runtime.deps.audit.recent(
        service="api", limit=50)]
    assert actions.count("gradual_step") == 2  # 50%, then 100%
    await world.slack.wait_for("chat.postMessage", _posted(
        f"Initiating rollback of api to revision {TARGET} gradually: 50%"), timeout=5)
    # A chart of the step that ended and one at the end, in the thread, through the
    # three calls of a Slack file upload.
    charts = [await world.slack.wait_for(
        "files.completeUploadExternal",
        lambda c, name=name: c.ok and c.response["files"][0]["name"] == name, timeout=15)
        for name in (f"gradual-{done.id}-step1.png", f"gradual-{done.id}-final.png")]
    assert all(c.args["thread_ts"] == done.thread_ts for c in charts)
    png = world.slack.api.files.content(charts[0].response["files"][0]["id"])
    assert png is not None and png.startswith(b"\x89PNG")
    assert len(world.slack.calls_to("files.getUploadURLExternal")) == 2


async def test_error_rate_on_the_target_aborts_and_restores_the_exact_split(
        gradual_bot: RunningBot) -> None:
    world = gradual_bot.world
    world.world.services[API].revisions[TARGET].error_rate = 0.2
    await _started(gradual_bot)
    done = await _until(gradual_bot, lambda c: c.state == State.FAILED)
    assert done.verdict == Verdict.ABORTED
    assert world.world.serving(API) == {SERVING: 100}
    assert _tags(world) == {}
    assert done.rollout is not None and done.rollout["failures"] == 2
    assert "5xx rate" in (done.error or "")
    await world.slack.wait_for(
        "files.completeUploadExternal", lambda c: c.ok and c.response["files"][0]["name"]
        == f"gradual-{done.id}-final.png", timeout=15)
    announced = await world.slack.wait_for(
        "chat.postMessage", lambda c: "Gradual rollback of *api* aborted" in _text(c)
        and not c.args.get("thread_ts"), timeout=10)
    assert "rollbot" in _text(announced)


async def test_inconclusive_metrics_pause_and_ask(database_url: str,
                                                  fresh_redis_url: str) -> None:
    world = await _world(min_requests=1_000_000)
    bot = await start_bot(world, database_url, fresh_redis_url)
    try:
        await _started(bot)
        paused = await _until(bot, lambda c: bool(c.rollout and c.rollout.get("paused")))
        assert "requests" in paused.rollout["paused"]  # type: ignore[index]
        assert paused.state == State.ROLLING_OUT
        assert world.world.serving(API) == {TARGET: 50, SERVING: 50}  # held, not moved
        held = await world.slack.wait_for(
            "chat.postMessage", _posted("Holding at 50%"), timeout=10)
        assert held.args.get("thread_ts")
    finally:
        await bot.stop()
        await world.stop()


async def test_buttons_follow_the_approval_rules(gradual_bot: RunningBot) -> None:
    world = gradual_bot.world
    card, _ = await _started(gradual_bot)
    slack = world.slack

    # The requester may not promote (a second person must), but may pause.
    await _click(gradual_bot, card, RolloutAction.PROMOTE.value, "U0ALICE")
    await slack.wait_for("response_url", lambda c: "second person" in _text(c), timeout=10)
    assert world.world.serving(API) == {TARGET: 50, SERVING: 50}
    await _click(gradual_bot, card, RolloutAction.PAUSE.value, "U0ALICE")
    paused = await _until(gradual_bot, lambda c: bool(c.rollout and c.rollout.get("paused")))
    assert "paused by <@U0ALICE>" in paused.rollout["paused"]  # type: ignore[index]
    await slack.wait_for("chat.postMessage", lambda c: "paused by <@U0ALICE>" in _text(c)
                         and not c.args.get("thread_ts"), timeout=10)

    # Resume needs an approver; then an approver promotes.
    await _click(gradual_bot, card, RolloutAction.RESUME.value, "U0ALICE")
    await slack.wait_for("response_url", lambda c: "second person" in _text(c), timeout=10)
    await _click(gradual_bot, card, RolloutAction.RESUME.value, "U0CAROL")
    await _until(gradual_bot, lambda c: bool(c.rollout) and not c.rollout.get("paused"))
    await _click(gradual_bot, card, RolloutAction.PROMOTE.value, "U0CAROL")
    done = await _until(gradual_bot, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
    assert done.state == State.SUCCEEDED
    assert world.world.serving(API) == {TARGET: 100} and _tags(world) == {}
    denied = [row for row in await gradual_bot.runtime.deps.audit.recent(service="api",
                                                                          limit=50)
              if row.outcome == "denied"]
    assert {row.action for row in denied} == {RolloutAction.PROMOTE.value,
                                                 RolloutAction.RESUME.value}


async def test_abort_by_the_requester_restores_the_split(gradual_bot: RunningBot) -> None:
    world = gradual_bot.world
    card, _ = await _started(gradual_bot)
    await _click(gradual_bot, card, RolloutAction.ABORT.value, "U0ALICE")
    done = await _until(gradual_bot, lambda c: c.state == State.FAILED)
    assert done.verdict == Verdict.ABORTED and "<@U0ALICE>" in (done.error or "")
    assert world.world.serving(API) == {SERVING: 100} and _tags(world) == {}
    # A late click (a card not yet refreshed) on a finished rollout changes nothing.
    result = await world.slack.click(
        gradual_bot.events_url, action_id=RolloutAction.PROMOTE.value, user_id="U0CAROL",
        channel_id="C0INCIDENT", message_ts=card.response["ts"], value=str(done.id))
    assert result.status == 200
    await world.slack.wait_for("response_url", lambda c: "not running any more" in _text(c),
                               timeout=10)
    assert world.world.serving(API) == {SERVING: 100}


async def test_overdue_after_a_restart_holds_and_asks(gradual_bot: RunningBot) -> None:
    _, change = await _started(gradual_bot)
    deps = gradual_bot.runtime.deps
    # As if rollbot had been down: the next analysis was due long ago.
    async with deps.pool.connection() as conn:
        await conn.execute(
            "UPDATE changes SET rollout = jsonb_set(rollout, '{next_due}', "
            "to_jsonb('2020-01-01T00:00:00+00:00'::text)) WHERE id = %s", (change.id,))
    rollout = (await _change(gradual_bot)).rollout
    assert rollout is not None
    from bot.workflow import rollout as rollout_flow

    await rollout_flow.step(deps, change.id, int(rollout["seq"]))
    held = await _change(gradual_bot)
    assert held.rollout and held.rollout["paused"] == "rollbot restarted: holding at 50%"
    assert gradual_bot.world.world.serving(API) == {TARGET: 50, SERVING: 50}


async def test_a_stale_step_job_does_nothing(gradual_bot: RunningBot) -> None:
    _, change = await _started(gradual_bot)
    deps = gradual_bot.runtime.deps
    before = await _change(gradual_bot)
    from bot.workflow import rollout as rollout_flow

    await rollout_flow.step(deps, change.id, seq=0)  # a job from before the last move
    after = await _change(gradual_bot)
    assert after.rollout is not None and before.rollout is not None
    assert len(after.rollout["analyses"]) >= len(before.rollout["analyses"])
    assert after.rollout["seq"] >= before.rollout["seq"]


@pytest.mark.parametrize("text, problem", [
    ("api --to-latest --gradual", "cannot be gradual"),
    ("api --gradual", "needs the revision"),
])
async def test_bad_gradual_requests_say_what_is_wrong(gradual_bot: RunningBot, text: str,
                                                      problem: str) -> None:
    slack = gradual_bot.world.slack
    ack = await slack.send_command(gradual_bot.events_url, text, user_id="U0ALICE",
                                   channel_id="C0INCIDENT", channel_name="inc-api-outage")
    assert ack.status == 200
    assert problem in ack.body


async def test_a_restart_mid_step_goes_on_where_it_was(database_url: str,
                                                        fresh_redis_url: str) -> None:
    world = await _world()
    first = await start_bot(world, database_url, fresh_redis_url)
    try:
        _, change = await _started(first)
    finally:
        await first.stop()  # the step's next analysis stays queued in Postgres
    second = await start_bot(world, database_url, fresh_redis_url)
    try:
        done = await _until(second, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
        assert done.id == change.id and done.state == State.SUCCEEDED, done.error
        assert world.world.serving(API) == {TARGET: 100} and _tags(world) == {}
    finally:
        await second.stop()
        await world.stop()


async def test_two_replicas_run_each_analysis_once(database_url: str,
                                                   fresh_redis_url: str) -> None:
    world = await _world()
    one = await start_bot(world, database_url, fresh_redis_url)
    two = await start_bot(world, database_url, fresh_redis_url)
    try:
        await _started(one)
        done = await _until(one, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
        assert done.state == State.SUCCEEDED, done.error
        assert done.rollout is not None
        numbers = [a["number"] for a in done.rollout["analyses"]]
        assert numbers == list(range(1, len(numbers) + 1))
        for number in numbers:
            lines = [c for c in world.slack.calls_to("chat.postMessage")
                     if c.http_status == 200 and f"Analysis {number}*" in _text(c)]
            assert len(lines) == 1, f"analysis {number} posted {len(lines)} times"
        steps = [row for row in await one.runtime.deps.audit.recent(service="api", limit=80)
                 if row.action == "gradual_step"]
        assert len(steps) == 2
    finally:
        await two.stop()
        await one.stop()
        await world.stop()


async def test_a_running_rollout_holds_its_service(gradual_bot: RunningBot) -> None:
    _, change = await _started(gradual_bot)
    slack = gradual_bot.world.slack
    await slack.send_command(gradual_bot.events_url, "api 00013-ghi", user_id="U0CAROL",
                             channel_id="C0INCIDENT", channel_name="inc-api-outage")
    refusal = await slack.wait_for(
        "response_url", lambda c: "already has an active rollback" in _text(c), timeout=10)
    assert f"#{change.id}" in _text(refusal) and "rolling out" in _text(refusal)


async def test_without_monitoring_the_thread_says_scrapes_cannot_tell_revisions_apart(
        database_url: str, fresh_redis_url: str) -> None:
    world = await _world(metrics_source="metrics_url", min_requests=1)
    bot = await start_bot(world, database_url, fresh_redis_url)
    try:
        await _started(bot)
        line = await world.slack.wait_for("chat.postMessage", _posted("Analysis 1*"),
                                          timeout=15)
        assert "cannot tell revisions apart" in _text(line)
        change = await _change(bot)
        assert change.rollout is not None
        assert change.rollout["analyses"][0]["apart"] is False
        assert change.rollout["analyses"][0]["target"]["source"] == "metrics_url"
    finally:
        await bot.stop()
        await world.stop()


async def test_a_late_analysis_goes_on_and_says_so(database_url: str,
                                                    fresh_redis_url: str) -> None:
    world = await _world(gradual=(60.0, 10.0))
    bot = await start_bot(world, database_url, fresh_redis_url)
    try:
        _, change = await _started(bot)
        deps = bot.runtime.deps
        await asyncio.sleep(1.5)  # requests reach the target: the analysis can judge
        # Due 6 s ago: later than the 5 s a slow restart is noticed by, within the two
        # intervals (20 s) past which the rollout holds and asks.
        async with deps.pool.connection() as conn:
            await conn.execute(
                "UPDATE changes SET rollout = jsonb_set(rollout, '{next_due}', "
                "to_jsonb((now() - interval '6 seconds')::text)) WHERE id = %s",
                (change.id,))
        seq = int((await _change(bot)).rollout["seq"])  # type: ignore[index]
        from bot.workflow import rollout as rollout_flow

        await rollout_flow.step(deps, change.id, seq)
        await world.slack.wait_for("chat.postMessage", _posted("rollbot resumed the rollout"),
                                   timeout=5)
        after = await _change(bot)
        assert after.rollout is not None and not after.rollout["paused"]
        assert len(after.rollout["analyses"]) == 1
    finally:
        await bot.stop()
        await world.stop()


async def test_a_rollout_whose_step_job_was_lost_gets_one_from_recovery(
        gradual_bot: RunningBot) -> None:
    _, change = await _started(gradual_bot)
    deps = gradual_bot.runtime.deps
    async with deps.pool.connection() as conn:
        await conn.execute("DELETE FROM procrastinate_jobs WHERE task_name = %s "
                           "AND status = 'todo'", (ROLLOUT_STEP,))
    from bot.workflow import recovery

    assert await recovery.resume_rollouts(deps) == 1
    assert await recovery.resume_rollouts(deps) == 0  # one job, however often it runs
    done = await _until(gradual_bot, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
    assert done.id == change.id and done.state == State.SUCCEEDED, done.error


async def test_gradual_on_a_plan_that_does_not_offer_it_is_refused(
        gradual_bot: RunningBot) -> None:
    world = gradual_bot.world
    slack = world.slack
    ack = await slack.send_command(gradual_bot.events_url, "api --image v1.2.2",
                                   user_id="U0ALICE", channel_id="C0INCIDENT",
                                   channel_name="inc-api-outage")
    assert ack.status == 200
    card = await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)
    assert GRADUAL not in _text(card)  # an image change is not offered in steps
    change = await _change(gradual_bot)
    # A forged Gradual click on it (the button is not on the card).
    result = await slack.click(gradual_bot.events_url, action_id=GRADUAL, user_id="U0BOB",
                               channel_id="C0INCIDENT", message_ts=card.response["ts"],
                               value=str(change.id))
    assert result.status == 200
    await slack.wait_for("response_url", lambda c: "does not offer" in _text(c), timeout=10)
    after = await _change(gradual_bot)
    assert after.state == State.PROPOSED and after.kind == "image"
    assert world.world.serving(API) == {SERVING: 100}


async def test_a_rollout_button_on_a_change_that_is_not_a_rollout_changes_nothing(
        gradual_bot: RunningBot) -> None:
    slack = gradual_bot.world.slack
    card = await _propose(gradual_bot, "api 00014-def")
    change = await _change(gradual_bot)
    result = await slack.click(gradual_bot.events_url, action_id=RolloutAction.ABORT.value,
                               user_id="U0BOB", channel_id="C0INCIDENT",
                               message_ts=card.response["ts"], value=str(change.id))
    assert result.status == 200
    await slack.wait_for("response_url", lambda c: "not running" in _text(c), timeout=10)
    assert (await _change(gradual_bot)).state == State.PROPOSED


# --- the flow's safety, for a gradual rollout as for every kind (test_kind_safety) -----

def _updates(bot: RunningBot) -> int:
    return len([c for c in bot.world.google.calls_to(UPDATE_SERVICE)
                if not c.request.validate_only])


async def test_the_requester_cannot_start_their_own_gradual_rollback(
        gradual_bot: RunningBot) -> None:
    card = await _propose(gradual_bot, "api 00014-def --gradual")
    await _click(gradual_bot, card, GRADUAL, "U0ALICE")
    await gradual_bot.world.slack.wait_for(
        "response_url", lambda c: "needs a second person" in _text(c), timeout=10)
    assert (await _change(gradual_bot)).state == State.PROPOSED
    assert _updates(gradual_bot) == 0


async def test_a_double_gradual_click_on_two_replicas_starts_one_rollout(
        gradual_bot: RunningBot, database_url: str, fresh_redis_url: str) -> None:
    second = await start_bot(gradual_bot.world, database_url, fresh_redis_url)
    try:
        card = await _propose(gradual_bot, "api 00014-def --gradual")
        await asyncio.gather(
            _click(gradual_bot, card, GRADUAL, "U0BOB"),
            _click(gradual_bot, card, GRADUAL, "U0BOB", url=second.events_url))
        done = await _until(gradual_bot, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
    finally:
        await second.stop()
    assert done.state == State.SUCCEEDED, done.error
    assert _updates(gradual_bot) == 2  # the 50% step, then 100%: once each


async def test_a_deploy_between_plan_and_gradual_changes_nothing(
        gradual_bot: RunningBot) -> None:
    world = gradual_bot.world.world
    card = await _propose(gradual_bot, "api 00014-def --gradual")
    service = world.services[API]
    service.traffic = [EmuTrafficTarget(revision="medicalcor-api-00013-ghi", percent=100)]
    await _click(gradual_bot, card, GRADUAL, "U0BOB")
    done = await _until(gradual_bot, lambda c: c.state == State.FAILED)
    assert (done.error or "").startswith("plan out of date")
    assert _updates(gradual_bot) == 0
    assert world.serving(API) == {"medicalcor-api-00013-ghi": 100}


async def test_a_crash_after_the_first_step_resumes_without_setting_it_twice(
        gradual_bot: RunningBot, database_url: str, fresh_redis_url: str) -> None:
    """Cloud Run took the first step, the process died before the row moved on: the
    restart finds the step set and starts the rollout's clock; no second update."""
    _, change = await _started(gradual_bot)
    await gradual_bot.stop()
    _forget_stopped(gradual_bot)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM procrastinate_jobs")
        await conn.execute("UPDATE changes SET state = 'executing', rollout = NULL, "
                           "after = NULL WHERE id = %s", (change.id,))
    before = _updates(gradual_bot)
    restarted = await start_bot(gradual_bot.world, database_url, fresh_redis_url)
    try:
        rolling = await _until(restarted, lambda c: c.state == State.ROLLING_OUT)
        assert rolling.id == change.id
        assert _updates(gradual_bot) == before  # found set: nothing sent again
        done = await _until(restarted, lambda c: c.state in (State.SUCCEEDED, State.FAILED))
        assert done.state == State.SUCCEEDED, done.error
    finally:
        await restarted.stop()
