"""Confirm → execute → verify in one job: what must precede the Cloud Run change
still does, and recovery neither loses an inline rollback nor runs it twice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import grpc
import psycopg

from bot.changes.model import Change, State
from bot.jobs_names import CONFIRM as CONFIRM_TASK
from bot.jobs_names import EXECUTE, VERIFY
from bot.messages.base import Message
from bot.workflow import recovery
from integrations.cloud_run import GoogleCloudRun
from integrations.emulators.google import methods
from integrations.emulators.world import EmuTrafficTarget
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import (
    API,
    CONFIRM,
    TARGET,
    UPDATE_SERVICE,
    _click,
    _posted,
    _propose,
    _rollback,
    _text,
    _text_starts,
    _wait_state,
)


async def _count(database_url: str, query: str, *args: Any) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(query, args)
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def _rollback_jobs(database_url: str) -> int:
    return await _count(database_url, "SELECT count(*) FROM procrastinate_jobs "
                        "WHERE task_name = ANY(%s) AND status IN ('todo', 'doing')",
                        [EXECUTE, VERIFY])


async def test_announcement_and_audit_row_precede_the_update_and_the_read_overlaps_them(
    running_bot: RunningBot, database_url: str, monkeypatch: Any
) -> None:
    deps = running_bot.runtime.deps
    slack, google = running_bot.world.slack, running_bot.world.google
    announced: dict[str, float] = {}
    post, record = deps.slack.post, deps.audit.record

    async def slow_post(channel: str, message: Message, **kwargs: Any) -> str:
        if message.text.startswith("Initiating rollback"):
            await asyncio.sleep(0.3)  # a slow Slack must not let the change go first
            ts = await post(channel, message, **kwargs)
            announced["done"] = time.monotonic()
            return ts
        return await post(channel, message, **kwargs)

    async def slow_record(**kwargs: Any) -> None:
        if kwargs.get("action") == "traffic_change_started":
            await asyncio.sleep(0.2)  # inside the transaction: the commit comes later still
        await record(**kwargs)

    monkeypatch.setattr(deps.slack, "post", slow_post)
    monkeypatch.setattr(deps.audit, "record", slow_record)
    services = cast(GoogleCloudRun, deps.cloud_run)._services
    update_service = services.update_service
    seen_at_update: list[tuple[bool, int]] = []

    async def spy_update_service(*args: Any, **kwargs: Any) -> Any:
        announcement = [c for c in slack.calls_to("chat.postMessage")
                        if _text_starts("Initiating rollback")(c)]
        audited = await _count(database_url, "SELECT count(*) FROM audit_events "
                               "WHERE action = 'traffic_change_started'")
        seen_at_update.append((bool(announcement), audited))
        return await update_service(*args, **kwargs)

    monkeypatch.setattr(services, "update_service", spy_update_service)
    card = await _propose(running_bot)
    clicked = time.monotonic()
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
    assert rollback.state == State.SUCCEEDED
    assert seen_at_update == [(True, 1)]  # announced and audited (committed) before it
    read = next(c for c in google.calls_to(methods.GET_SERVICE) if c.time >= clicked)
    assert read.time < announced["done"] - 0.2  # the read went out while Slack was slow
    assert running_bot.world.world.serving(API) == {TARGET: 100}
    # The summary's refreshes ran beside the checks; the last one shown is the final one.
    await slack.wait_for("chat.update", lambda c: c.args["ts"] == rollback.summary_ts
                         and "Done" in _text(c), timeout=10)
    await asyncio.sleep(0.3)
    updates = [c for c in slack.calls_to("chat.update") if c.args["ts"] == rollback.summary_ts]
    assert "Done" in _text(updates[-1]) and "checks passing" in _text(updates[-1])


async def test_recovery_leaves_a_rollback_carried_inline_alone(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    """Maintenance, here or on a replica starting meanwhile, must not defer a second
    execute (or verify) while the confirm job carries the rollback inline."""
    world = running_bot.world
    world.google.faults.delay(UPDATE_SERVICE, 1.0, count=1)  # hold it in `executing`
    world.world.services[API].revisions[TARGET].healthy = False  # and then in `verifying`
    deps = running_bot.runtime.deps
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    await _wait_state(running_bot, State.EXECUTING)
    second = await start_bot(world, database_url, fresh_redis_url)  # start-up recovery
    try:
        await recovery.maintenance(deps)
        await recovery.maintenance(second.runtime.deps)
        assert await _rollback_jobs(database_url) == 0
        await _wait_state(running_bot, State.VERIFYING, within=10)
        assert await recovery.resume_orphans(second.runtime.deps) == 0
        assert await _rollback_jobs(database_url) == 0
        rollback = await _wait_state(running_bot, State.FAILED, State.SUCCEEDED, within=15)
    finally:
        await second.stop()
    assert rollback.verdict == "failed"  # the target stayed unhealthy
    assert len(world.google.calls_to(UPDATE_SERVICE)) == 1
    actions = [e.action for e in await deps.audit.for_change(rollback.id)]
    assert "resumed" not in actions


async def _crash_with_confirm_job(bot: RunningBot, database_url: str, *,
                                  state: State = State.CONFIRMED,
                                  execute_job_too: bool = False) -> int:
    """The state a replica killed while its confirm job carried the rollback leaves:
    the rollback `state`, its confirm job `doing` with no live worker."""
    card = await _propose(bot)
    rollback = await _rollback(bot)
    await bot.stop()
    click = {"user_id": "U0BOB", "channel_id": "C0INCIDENT", "channel_name": "inc-api-outage",
             "message_ts": card.response["ts"],
             "response_url": bot.world.slack.new_response_url(
                 channel_id="C0INCIDENT", user_id="U0BOB"),
             "action_id": CONFIRM, "value": str(rollback.id), "action_ts": "1.0"}
    jobs = [("interactive", CONFIRM_TASK, {"click": click, "change_id": rollback.id})]
    if execute_job_too:
        jobs.append(("rollbacks", EXECUTE, {"change_id": rollback.id}))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM procrastinate_jobs")
        await conn.execute("UPDATE changes SET state = %s, confirmed_by = 'U0BOB' "
                           "WHERE id = %s", (state.value, rollback.id))
        for queue, task, args in jobs:
            await conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
                "VALUES (%s, %s, %s::jsonb, 'doing')", (queue, task, json.dumps(args)))
    return rollback.id


def _forget_stopped(bot: RunningBot) -> None:
    bot.runner = None  # already stopped

    async def noop() -> None:
        return None

    bot.runtime.stop = noop  # type: ignore[method-assign]


async def test_crash_mid_inline_rollback_is_resumed_exactly_once(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    change_id = await _crash_with_confirm_job(running_bot, database_url)
    # The restart's recovery re-queues the stalled confirm job (a retry, attempts 1);
    # resume_orphans sees it carrying the rollback and defers nothing else.
    restarted = await start_bot(running_bot.world, database_url, fresh_redis_url)
    try:
        rollback = await _wait_state(restarted, State.SUCCEEDED, State.FAILED, within=15)
        assert rollback.state == State.SUCCEEDED and rollback.id == change_id
        await recovery.maintenance(restarted.runtime.deps)  # a later round: nothing to do
        actions = [e.action for e in await restarted.runtime.deps.audit.for_change(
            change_id)]
    finally:
        await restarted.stop()
        _forget_stopped(running_bot)
    slack, google = running_bot.world.slack, running_bot.world.google
    assert len(google.calls_to(UPDATE_SERVICE)) == 1
    assert actions.count("resumed") == 1
    assert actions.count("traffic_change_started") == 1
    assert len([c for c in slack.calls_to("chat.postMessage")
                if _text_starts("Initiating rollback")(c)]) == 1
    # The clicker is not told "already handled" by the retry of their own click.
    assert not [c for c in slack.calls_to("response_url") if "already" in json.dumps(c.args)]
    assert running_bot.world.world.serving(API) == {TARGET: 100}


async def _restart_until_verdict(bot: RunningBot, database_url: str, redis_url: str,
                                 line_prefix: str) -> tuple[Any, Change]:
    """Restart after the crash; the thread line starting `line_prefix` and the
    rollback once it has finished."""
    restarted = await start_bot(bot.world, database_url, redis_url)
    try:
        line = await bot.world.slack.wait_for("chat.postMessage", _text_starts(line_prefix),
                                              timeout=15)
        rollback = await _wait_state(restarted, State.SUCCEEDED, State.FAILED, within=15)
    finally:
        await restarted.stop()
        _forget_stopped(bot)
    return line, rollback


async def test_resumed_verification_reads_what_serves_again(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    """Killed in `verifying`: the resumed verification's serving check is a fresh read
    of Cloud Run, not the row's memory of it."""
    change_id = await _crash_with_confirm_job(running_bot, database_url,
                                                state=State.VERIFYING)
    world = running_bot.world
    world.world.services[API].traffic = [EmuTrafficTarget(revision=TARGET, percent=100)]
    reads_before = len(world.google.calls_to(methods.GET_SERVICE))
    line, rollback = await _restart_until_verdict(running_bot, database_url, fresh_redis_url,
                                                  "✅ serving")
    assert line.args["text"].startswith(f"✅ serving · {TARGET} 100%, as asked")
    assert rollback.id == change_id and rollback.verdict == "verified"
    assert len(world.google.calls_to(methods.GET_SERVICE)) > reads_before
    assert not world.google.calls_to(UPDATE_SERVICE)  # verifying: nothing to change


async def test_resumed_verification_that_cannot_read_cloud_run_fails_saying_so(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    await _crash_with_confirm_job(running_bot, database_url, state=State.VERIFYING)
    world = running_bot.world
    world.google.faults.inject(methods.GET_SERVICE, grpc.StatusCode.PERMISSION_DENIED,
                               count=-1, message="caller lacks run.services.get")
    line, rollback = await _restart_until_verdict(running_bot, database_url, fresh_redis_url,
                                                  "❌ serving")
    assert "could not read Cloud Run" in line.args["text"]
    assert "run.services.get" in line.args["text"]
    assert rollback.verdict == "failed"


async def test_retried_confirm_job_leaves_a_rollback_another_job_carries(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    """Two stalled jobs carry one rollback (its confirm job and an execute job):
    both are retried; the traffic change still runs once, never twice at once."""
    # `executing`: no conditional transition left to stop a second change.
    await _crash_with_confirm_job(running_bot, database_url, state=State.EXECUTING,
                                  execute_job_too=True)
    restarted = await start_bot(running_bot.world, database_url, fresh_redis_url)
    try:
        done = await _wait_state(restarted, State.SUCCEEDED, State.FAILED, within=15)
        await asyncio.sleep(0.5)  # room for a (wrong) second change
    finally:
        await restarted.stop()
        _forget_stopped(running_bot)
    assert done.state == State.SUCCEEDED
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 1


async def test_malformed_job_arguments_do_not_break_recovery(
    running_bot: RunningBot, database_url: str
) -> None:
    """Job arguments are matched as text: odd values (never produced by rollbot, but
    the queue is a table) neither crash maintenance nor hide an orphan."""
    card = await _propose(running_bot)
    rollback = await _rollback(running_bot)
    odd = [(CONFIRM_TASK, {"click": {"value": "abc"}}),
           (CONFIRM_TASK, {"click": {"value": f"0{rollback.id}"}}),  # not canonical
           (CONFIRM_TASK, {"click": "not a dict"}), (CONFIRM_TASK, {}),
           (CONFIRM_TASK, {"change_id": None}), (CONFIRM_TASK, {"change_id": f"0{rollback.id}"}),
           (EXECUTE, {"change_id": "x"}), (EXECUTE, {"change_id": [rollback.id]}),
           (VERIFY, {})]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE changes SET state = 'executing', confirmed_by = 'U0BOB' "
                           "WHERE id = %s", (rollback.id,))
        await conn.execute("DELETE FROM procrastinate_jobs")
        # 'doing': no worker picks them up (they would only fail).
        for task, args in odd:
            await conn.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
                "VALUES ('parked', %s, %s::jsonb, 'doing')", (task, json.dumps(args)))
    assert await recovery.resume_orphans(running_bot.runtime.deps) == 1
    done = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
    assert done.state == State.SUCCEEDED
    assert card.response["ts"] == done.card_ts
    await running_bot.world.slack.wait_for("chat.postMessage", _posted("restarted"))
