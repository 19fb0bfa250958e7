"""The rollback end to end: signed requests in, Cloud Run changed through the
gRPC emulator, messages out at the Slack emulator, state and audit in Postgres."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import grpc
import psycopg

from bot.changes.model import Change, State
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import EmuTrafficTarget
from tests.e2e.conftest import RunningBot, start_bot

ALICE = {"user_id": "U0ALICE", "channel_id": "C0INCIDENT", "channel_name": "inc-api-outage"}
UPDATE_SERVICE = "google.cloud.run.v2.Services/UpdateService"
GET_REVISION = "google.cloud.run.v2.Revisions/GetRevision"
API = "medicalcor-api"
TARGET = "medicalcor-api-00014-def"
SERVING = "medicalcor-api-00015-abc"  # what serves before the rollback
GET_SERVICE = "google.cloud.run.v2.Services/GetService"
CONFIRM = "rollback.confirm"
CANCEL = "rollback.cancel"


def _text(call: SlackCall) -> str:
    return str(call.args.get("text", "")) + json.dumps(call.args.get("blocks", []))


def _posted(predicate_text: str):
    # Only calls Slack accepted (a rate-limited attempt is retried, not delivered).
    return lambda call: call.http_status == 200 and predicate_text in _text(call)


def _text_starts(prefix: str):
    return lambda call: call.http_status == 200 and str(
        call.args.get("text", "")).startswith(prefix)


async def _propose(bot: RunningBot, text: str = "api 00014-def") -> SlackCall:
    slack = bot.world.slack
    ack = await slack.send_command(bot.events_url, text, **ALICE)
    assert ack.status == 200
    return await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)


async def _click(bot: RunningBot, card: SlackCall, action_id: str, user_id: str,
                 url: str | None = None) -> None:
    result = await bot.world.slack.click(
        url or bot.events_url, action_id=action_id, user_id=user_id, channel_id="C0INCIDENT",
        message_ts=card.response["ts"])
    assert result.status == 200


async def _rollback(bot: RunningBot) -> Change:
    rollbacks = await bot.runtime.deps.changes.history("api", limit=1)
    assert rollbacks, "no rollback row"
    return rollbacks[0]


async def _wait_state(bot: RunningBot, *states: State, within: float = 10) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        rollback = await _rollback(bot)
        if rollback.state in states:
            return rollback
        assert loop.time() < deadline, f"rollback stuck in {rollback.state}"
        await asyncio.sleep(0.05)


async def test_happy_path_confirm_shift_verify(running_bot: RunningBot) -> None:
    slack, world = running_bot.world.slack, running_bot.world.world
    card = await _propose(running_bot)
    text = _text(card)
    for expected in ("medicalcor-api-00015-abc", TARGET, "v1.2.2", "v1.3.0",
                     f"gcloud run services update-traffic {API} --region=europe-west3 "
                     f"--to-revisions={TARGET}=100", "database migrations", CONFIRM, CANCEL):
        assert expected in text, expected
    assert card.args["channel"] == "C0INCIDENT" and not card.args.get("thread_ts")

    await _click(running_bot, card, CONFIRM, "U0BOB")
    announcement = await slack.wait_for("chat.postMessage", _text_starts("Initiating rollback"))
    assert announcement.args["text"] == (
        f"Initiating rollback of api to revision {TARGET} "
        "(requested by <@U0ALICE>, confirmed by <@U0BOB>)")
    assert not announcement.args.get("thread_ts")
    verdict = await slack.wait_for("chat.postMessage", _posted("Rollback verified"), timeout=15)
    assert verdict.args["thread_ts"] == announcement.response["ts"]
    assert world.serving(API) == {TARGET: 100}
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 1

    rollback = await _wait_state(running_bot, State.SUCCEEDED)
    assert rollback.confirmed_by == "U0BOB" and rollback.verdict == "verified"
    assert rollback.before["traffic"] == {"medicalcor-api-00015-abc": 100}
    assert (rollback.after or {})["traffic"] == {TARGET: 100}
    # The card was updated in place: confirmer shown, buttons gone, final state shown.
    updates = [c for c in slack.calls_to("chat.update") if c.args["ts"] == card.response["ts"]]
    assert updates and "U0BOB" in _text(updates[0]) and CONFIRM not in _text(updates[0])
    await slack.wait_for("chat.update", lambda c: c.args["ts"] == card.response["ts"]
                         and "verified" in _text(c).lower())
    # Each check streamed into the thread, and the summary was kept current.
    thread = [c for c in slack.calls_to("chat.postMessage")
              if c.args.get("thread_ts") == announcement.response["ts"]]
    assert any("health" in _text(c) for c in thread)
    assert any("database" in _text(c) for c in thread)  # /ready's dependency checks
    # The first check line is the runbook's "Check the serving revision": the read-back.
    first_check = next(c for c in thread if str(c.args["text"]).startswith(("✅", "❌")))
    assert first_check.args["text"].startswith(
        f"✅ serving · {TARGET} 100%, as asked (before: medicalcor-api-00015-abc 100%) · ")
    actions = [e.action for e in await running_bot.runtime.deps.audit.for_change(rollback.id)]
    assert actions[:4] == ["propose", "confirm", "traffic_change_started", "traffic_changed"]
    assert actions[-1] == "verified"


async def test_requester_cannot_confirm_own_rollback(running_bot: RunningBot) -> None:
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0ALICE")
    refusal = await running_bot.world.slack.wait_for("response_url", _posted("second person"))
    assert refusal.args.get("response_type") == "ephemeral"
    assert (await _rollback(running_bot)).state == State.PROPOSED
    assert not running_bot.world.google.calls_to(UPDATE_SERVICE)
    events = await running_bot.runtime.deps.audit.for_change((await _rollback(running_bot)).id)
    assert [(e.action, e.outcome) for e in events][-1] == ("confirm", "denied")


async def test_non_approver_cannot_confirm(running_bot: RunningBot) -> None:
    running_bot.world.slack.add_user("U0DAVE", "dave")
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0DAVE")
    refusal = await running_bot.world.slack.wait_for("response_url", _posted("approvers"))
    assert "<@U0BOB>" in _text(refusal)
    assert (await _rollback(running_bot)).state == State.PROPOSED


async def test_double_confirm_changes_traffic_once(running_bot: RunningBot) -> None:
    card = await _propose(running_bot)
    await asyncio.gather(*(_click(running_bot, card, CONFIRM, user)
                           for user in ("U0BOB", "U0BOB", "U0CAROL")))
    await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 1
    await running_bot.world.slack.wait_for("response_url", _posted("already"))


async def test_second_rollback_of_same_service_is_refused(running_bot: RunningBot) -> None:
    await _propose(running_bot)
    slack, google = running_bot.world.slack, running_bot.world.google
    cloud_run_reads = len(google.calls_to(GET_REVISION))
    await slack.send_command(running_bot.events_url, "api 00013-ghi", **ALICE)
    refusal = await slack.wait_for("response_url", _posted("already"))
    assert "00014-def" in _text(refusal)  # names the active rollback
    # Refused before planning: no Cloud Run read for a plan nobody could confirm.
    assert len(google.calls_to(GET_REVISION)) == cloud_run_reads
    await slack.send_command(running_bot.events_url, "web 00013-pqr", **ALICE)
    await slack.wait_for("chat.postMessage", _posted("medicalcor-web-00013-pqr"))


async def test_transient_cloud_run_errors_are_retried(running_bot: RunningBot) -> None:
    running_bot.world.google.faults.inject(UPDATE_SERVICE, grpc.StatusCode.UNAVAILABLE, count=2)
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
    assert rollback.state == State.SUCCEEDED
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 3


async def test_permanent_refusal_fails_with_traffic_unchanged(running_bot: RunningBot) -> None:
    world = running_bot.world
    world.google.faults.inject(UPDATE_SERVICE, grpc.StatusCode.PERMISSION_DENIED, count=-1,
                               message="caller lacks run.services.update")
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    line = await world.slack.wait_for("chat.postMessage", _posted("Traffic unchanged"))
    assert "permission denied" in _text(line).lower()
    rollback = await _wait_state(running_bot, State.FAILED)
    assert (rollback.after or {})["traffic"] == {"medicalcor-api-00015-abc": 100}
    assert world.world.serving(API) == {"medicalcor-api-00015-abc": 100}
    assert len(world.google.calls_to(UPDATE_SERVICE)) == 1  # 403 is not retried
    await world.slack.wait_for("chat.postMessage", _posted("escalate"))


async def test_unhealthy_after_rollback_is_a_failed_verdict(running_bot: RunningBot) -> None:
    world = running_bot.world.world
    world.services[API].revisions[TARGET].healthy = False
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    verdict = await running_bot.world.slack.wait_for(
        "chat.postMessage", _posted("Stop and escalate"), timeout=15)
    assert "health" in _text(verdict)
    rollback = await _wait_state(running_bot, State.FAILED)
    assert rollback.verdict == "failed"


async def test_traffic_changed_under_the_rollback_fails_the_serving_check(
    running_bot: RunningBot,
) -> None:
    """Someone splits the traffic between the operation and the read-back: the serving
    check says what serves, the verdict fails, whatever the health checks say."""
    world = running_bot.world
    card = await _propose(running_bot)
    world.google.faults.delay(GET_SERVICE, 0.5)  # the read-back comes late
    await _click(running_bot, card, CONFIRM, "U0BOB")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while world.world.serving(API) != {TARGET: 100}:  # the operation is done
        assert loop.time() < deadline, "traffic never shifted"
        await asyncio.sleep(0.005)
    world.world.services[API].traffic = [EmuTrafficTarget(revision=TARGET, percent=50),
                                         EmuTrafficTarget(revision=SERVING, percent=50)]
    line = await world.slack.wait_for("chat.postMessage", _text_starts("❌ serving"), timeout=10)
    assert line.args["text"].startswith(
        f"❌ serving · {TARGET} 50%, {SERVING} 50%, but {TARGET} 100% was asked for")
    verdict = await world.slack.wait_for("chat.postMessage", _posted("Stop and escalate"),
                                         timeout=15)
    assert "verification failed: serving" in _text(verdict)
    rollback = await _wait_state(running_bot, State.FAILED)
    assert rollback.verdict == "failed"
    assert (rollback.after or {})["traffic"] == {TARGET: 50, SERVING: 50}


async def test_no_checks_configured_is_degraded_even_with_traffic_as_asked(
    running_bot: RunningBot,
) -> None:
    """The serving check alone proves the traffic moved, not that the service works."""
    services = running_bot.runtime.deps.catalog.services
    services["api"] = services["api"].model_copy(update={
        "health_url": None, "ready_url": None, "smoke_urls": [], "smoke_command": None})
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    slack = running_bot.world.slack
    await slack.wait_for("chat.postMessage", _text_starts("✅ serving"), timeout=10)
    verdict = await slack.wait_for("chat.postMessage", _posted("nothing verified"), timeout=15)
    assert "no checks configured" in verdict.args["text"]
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED)
    assert rollback.state == State.SUCCEEDED and rollback.verdict == "degraded"


async def test_cancel_changes_nothing(running_bot: RunningBot) -> None:
    card = await _propose(running_bot)
    await _click(running_bot, card, CANCEL, "U0ALICE")
    rollback = await _wait_state(running_bot, State.CANCELLED)
    assert rollback.cancelled_by == "U0ALICE"
    await running_bot.world.slack.wait_for(
        "chat.update", lambda c: c.args["ts"] == card.response["ts"] and "Cancelled" in _text(c))
    # A stale Confirm (e.g. from a client that had not refreshed the card).
    await running_bot.world.slack.click(
        running_bot.events_url, action_id=CONFIRM, value=str(rollback.id), user_id="U0BOB",
        channel_id="C0INCIDENT")
    await running_bot.world.slack.wait_for("response_url", _posted("cancelled"))
    assert not running_bot.world.google.calls_to(UPDATE_SERVICE)


async def test_dry_run_is_ephemeral_and_changes_nothing(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, "api 00014-def --dry-run", **ALICE)
    preview = await slack.wait_for("response_url", _posted("DRY RUN"))
    assert preview.args.get("response_type") == "ephemeral"
    assert CONFIRM not in _text(preview)
    assert not await running_bot.runtime.deps.changes.history("api")
    assert not slack.calls_to("chat.postMessage")


async def test_rollbacks_only_in_incident_channels(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    result = await slack.send_command(
        running_bot.events_url, "api 00014-def", user_id="U0ALICE", channel_id="C0GENERAL",
        channel_name="general")
    body = json.loads(result.body)
    assert body["response_type"] == "ephemeral"
    assert "^(inc|incident)[-_]" in body["text"]


async def test_target_already_serving_is_nothing_to_do(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, "api 00015-abc", **ALICE)
    card = await slack.wait_for("response_url", _posted("Nothing to do"))
    assert CONFIRM not in _text(card) and "rollback.override" not in _text(card)
    assert not await running_bot.runtime.deps.changes.history("api")


async def test_unknown_revision_is_explained(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, "api 00099-zzz", **ALICE)
    refusal = await slack.wait_for("response_url", _posted("does not exist"))
    assert "/rollback api" in _text(refusal)


async def test_revision_list_button_starts_the_same_flow(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    value = json.dumps({"service": "api", "revision": TARGET})
    await slack.click(running_bot.events_url, action_id="revisions.roll_back_to", value=value,
                      user_id="U0ALICE", channel_id="C0INCIDENT")
    card = await slack.wait_for("chat.postMessage", _posted("Rollback plan"))
    assert TARGET in _text(card)


async def test_history_lists_rollbacks(running_bot: RunningBot) -> None:
    card = await _propose(running_bot)
    await _click(running_bot, card, CANCEL, "U0ALICE")
    await _wait_state(running_bot, State.CANCELLED)
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, "history api", **ALICE)
    history = await slack.wait_for("response_url", _posted(TARGET))
    assert history.args.get("response_type") == "ephemeral"


async def test_two_replicas_one_double_click_one_traffic_change(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    second = await start_bot(running_bot.world, database_url, fresh_redis_url)
    try:
        card = await _propose(running_bot)
        await asyncio.gather(
            _click(running_bot, card, CONFIRM, "U0BOB"),
            _click(running_bot, card, CONFIRM, "U0BOB", url=second.events_url))
        rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
        assert rollback.state == State.SUCCEEDED
        assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 1
    finally:
        await second.stop()


async def test_restart_resumes_a_rollback_left_executing(
    running_bot: RunningBot, database_url: str, fresh_redis_url: str
) -> None:
    # A rollback confirmed and marked executing by a process that then died.
    card = await _propose(running_bot)
    proposed = await _rollback(running_bot)
    await running_bot.stop()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE changes SET state='executing', confirmed_by='U0BOB' "
                           "WHERE id=%s", (proposed.id,))
        await conn.execute("DELETE FROM procrastinate_jobs")
    restarted = await start_bot(running_bot.world, database_url, fresh_redis_url)
    try:
        slack = running_bot.world.slack
        await slack.wait_for("chat.postMessage", _posted("restarted"), timeout=10)
        rollback = await _wait_state(restarted, State.SUCCEEDED, State.FAILED, within=15)
        assert rollback.state == State.SUCCEEDED
        assert running_bot.world.world.serving(API) == {TARGET: 100}
        assert card.response["ts"] == rollback.card_ts
    finally:
        await restarted.stop()
        running_bot.runner = None  # already stopped above

        async def noop() -> None:
            return None

        running_bot.runtime.stop = noop  # type: ignore[method-assign]


async def test_slack_retry_of_a_command_proposes_once(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    first = await slack.send_command(running_bot.events_url, "api 00014-def", **ALICE)
    await slack.wait_for("chat.postMessage", _posted("Rollback plan"))
    # Slack re-sends the very same request (same trigger_id) when it thinks it timed out.
    headers = slack.sign(first.request_body) | {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    async with aiohttp.ClientSession() as session:
        async with session.post(running_bot.events_url, data=first.request_body,
                                headers=headers) as retry:
            assert retry.status == 200
    await asyncio.sleep(0.5)
    cards = [c for c in slack.calls_to("chat.postMessage") if "Rollback plan" in _text(c)]
    assert len(cards) == 1
    assert not [c for c in slack.calls_to("response_url") if "already" in _text(c)]
