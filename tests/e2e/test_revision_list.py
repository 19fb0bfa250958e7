"""`/rollback`, `/rollback help`, `/rollback <service>` end to end: signed
requests in, messages out at the Slack emulator."""

from __future__ import annotations

import json
import time

import aiohttp
import grpc

from tests.e2e.conftest import RunningBot

INCIDENT = {"user_id": "U0ALICE", "channel_id": "C0INCIDENT", "channel_name": "inc-api-outage"}
LIST_REVISIONS = "google.cloud.run.v2.Revisions/ListRevisions"


def _all_text(blocks: list[dict]) -> str:
    return json.dumps(blocks)


async def test_list_revisions_answers_ephemerally_with_buttons(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    result = await slack.send_command(running_bot.events_url, "api", **INCIDENT)
    assert result.status == 200
    call = await slack.wait_for("response_url", timeout=10)
    assert call.args.get("response_type") == "ephemeral"
    assert call.http_status == 200, call.response  # Slack accepted the blocks
    text = _all_text(call.args["blocks"])
    for suffix in ("00013-ghi", "00014-def", "00015-abc"):
        assert f"medicalcor-api-{suffix}" in text
    assert "*100% traffic*" in text
    assert "v1.2.2" in text  # image tag of 00014-def
    buttons = [b["accessory"] for b in call.args["blocks"] if b.get("accessory")]
    values = [json.loads(b["value"]) for b in buttons]
    # Every revision not already serving 100% gets a button; the serving one does not.
    assert {v["revision"] for v in values} == {
        "medicalcor-api-00013-ghi", "medicalcor-api-00014-def"}
    assert all(v["service"] == "api" for v in values)


async def test_help_rides_on_the_ack(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    for text in ("", "help"):
        result = await slack.send_command(running_bot.events_url, text, **INCIDENT)
        assert result.status == 200
        body = json.loads(result.body)
        assert body["response_type"] == "ephemeral"
        assert "Bad API deployment" in _all_text(body["blocks"])
    assert not slack.calls_to("response_url")


async def test_unknown_service_lists_known_ones(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    result = await slack.send_command(running_bot.events_url, "payments", **INCIDENT)
    body = json.loads(result.body)
    assert body["response_type"] == "ephemeral"
    assert "Unknown service or command `payments`" in body["text"]
    assert "`api`, `web`" in body["text"]


async def test_malformed_revision_is_explained(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    result = await slack.send_command(running_bot.events_url, "api drop;table", **INCIDENT)
    body = json.loads(result.body)
    assert "not a valid revision name" in body["text"]
    assert "00014-def" in body["text"]


async def test_cloud_run_unreachable_says_nothing_changed(running_bot: RunningBot) -> None:
    world = running_bot.world
    world.google.faults.inject(LIST_REVISIONS, grpc.StatusCode.UNAVAILABLE, count=-1)
    traffic_before = world.world.serving("medicalcor-api")
    await world.slack.send_command(running_bot.events_url, "api", **INCIDENT)
    call = await world.slack.wait_for("response_url", timeout=10)
    assert "Couldn't reach Cloud Run" in call.args["text"]
    assert "Nothing was changed" in call.args["text"]
    assert world.world.serving("medicalcor-api") == traffic_before
    # Retried with backoff before giving up, as policy says.
    assert len(world.google.calls_to(LIST_REVISIONS)) == 3


async def test_transient_cloud_run_error_is_retried(running_bot: RunningBot) -> None:
    world = running_bot.world
    world.google.faults.inject(LIST_REVISIONS, grpc.StatusCode.UNAVAILABLE, count=2)
    await world.slack.send_command(running_bot.events_url, "web", **INCIDENT)
    call = await world.slack.wait_for("response_url", timeout=10)
    assert "medicalcor-web-00014-abc" in _all_text(call.args["blocks"])


async def test_bad_signatures_get_401_and_do_nothing(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    url = running_bot.events_url
    wrong = await slack.send_command(url, "api", signing_secret="not-the-secret", **INCIDENT)
    expired = await slack.send_command(url, "api", timestamp=int(time.time()) - 301, **INCIDENT)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data={"command": "/rollback", "text": "api"}) as missing:
            missing_status = missing.status
    assert (wrong.status, expired.status, missing_status) == (401, 401, 401)
    await slack.send_command(url, "web", **INCIDENT)  # a good one, to know the bot is alive
    call = await slack.wait_for("response_url", timeout=10)
    assert len(slack.calls_to("response_url")) == 1
    assert "medicalcor-web" in call.args["text"]


async def test_healthz_and_readyz(running_bot: RunningBot) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(running_bot.url + "/healthz") as health:
            assert health.status == 200
        async with session.get(running_bot.url + "/readyz") as ready:
            assert ready.status == 200
            assert await ready.json() == {
                "status": "ready", "checks": {"database": "ok", "redis": "ok"}}
