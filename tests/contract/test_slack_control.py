"""The Slack emulator's control API (`/_emulator/...`): what another process (curl,
a test driving `rollbot emulate`) uses to deliver commands and read what was said."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.web.async_client import AsyncWebClient

from integrations.emulators.slack import SlackEmulator
from integrations.emulators.slack.control import check_app_url, is_loopback_host
from tests.contract.conftest import SlackReceiver

SECRET = "control-signing-secret"
INCIDENT = "C0INCIDENT"


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(signing_secret=SECRET) as emulator:  # 127.0.0.1: control API on
        yield emulator


@pytest_asyncio.fixture
async def app() -> AsyncIterator[SlackReceiver]:
    ack = json.dumps({"response_type": "ephemeral", "text": "on it"})
    async with SlackReceiver(SECRET, ack_body=ack) as receiver:
        yield receiver


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST.", "::1",
                                  "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["", None, "0.0.0.0", "10.0.0.1", "example.com", "::",
                                  "::ffff:8.8.8.8", "localhost.example.com", "128.0.0.1"])
def test_non_loopback_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_check_app_url_accepts_loopback_only() -> None:
    assert check_app_url("http://[::1]:3000/slack/events") == "http://[::1]:3000/slack/events"
    with pytest.raises(Exception, match="not loopback"):
        check_app_url("http://127.0.0.1.nip.io/slack/events")
    with pytest.raises(Exception, match="http"):
        check_app_url("file:///etc/passwd")


@pytest.mark.parametrize("app_url", [
    "http://example.com/slack/events",
    "https://10.1.2.3:3000/slack/events",
    "http://0.0.0.0:3000/slack/events",
    "http://user@evil.test/slack/events",
    "ftp://127.0.0.1/slack/events",
    "http://127.0.0.1:notaport/slack/events",
    None,
])
async def test_non_loopback_app_url_is_refused(
    emu: SlackEmulator, http: aiohttp.ClientSession, app_url: str | None
) -> None:
    base = {"text": "api", "user_id": "U0ALICE", "channel_id": INCIDENT}
    status, body = await _post(http, f"{emu.base_url}/_emulator/command",
                               {**base, "app_url": app_url})
    assert status == 400
    assert "app_url" in body["error"]
    status, body = await _post(http, f"{emu.base_url}/_emulator/click", {
        "app_url": app_url, "action_id": "go", "value": "v", "user_id": "U0ALICE",
        "channel_id": INCIDENT})
    assert status == 400
    assert not emu.deliveries
    assert not emu.store.response_targets  # not even a response_url was minted


async def test_command_is_delivered_signed_and_answered(
    emu: SlackEmulator, app: SlackReceiver, http: aiohttp.ClientSession
) -> None:
    status, result = await _post(http, f"{emu.base_url}/_emulator/command", {
        "app_url": app.url, "text": "api", "user_id": "U0ALICE", "channel_id": INCIDENT})
    assert status == 200
    assert result["status"] == 200
    assert json.loads(result["body"]) == {"response_type": "ephemeral", "text": "on it"}
    assert result["elapsed"] >= 0
    assert result["response_url"].startswith(f"{emu.base_url}/response/")
    form = app.forms[-1]  # the signature verified, or the app would have said 401
    assert (form["command"], form["text"], form["user_id"], form["channel_id"]) == (
        "/rollback", "api", "U0ALICE", INCIDENT)
    assert form["channel_name"] == "inc-api-outage"
    assert form["response_url"] == result["response_url"]
    # The ack shows in the channel like Slack shows it (ephemeral to the requester).
    status, messages = await _get(http, f"{emu.base_url}/_emulator/messages?channel={INCIDENT}")
    assert status == 200
    assert [(m["text"], m.get("visible_to")) for m in messages] == [("on it", "U0ALICE")]

    # What the app later posts to the response_url is listed as a "response_url" call.
    async with http.post(result["response_url"], json={"text": "revisions: …"}) as resp:
        assert resp.status == 200
    status, calls = await _get(http, f"{emu.base_url}/_emulator/calls?method=response_url")
    assert status == 200
    assert [c["args"]["text"] for c in calls] == ["revisions: …"]
    assert calls[0]["method"] == "response_url"
    assert calls[0]["http_status"] == 200
    assert calls[0]["response"]["ok"] is True


async def test_command_options_are_passed_through(
    emu: SlackEmulator, app: SlackReceiver, http: aiohttp.ClientSession
) -> None:
    status, _ = await _post(http, f"{emu.base_url}/_emulator/command", {
        "app_url": app.url.replace("127.0.0.1", "localhost"), "text": "help",
        "user_id": "U0BOB", "channel_id": "C0GENERAL", "channel_name": "renamed",
        "command": "/rb"})
    assert status == 200
    form = app.forms[-1]
    assert (form["command"], form["channel_name"], form["user_name"]) == ("/rb", "renamed", "bob")


async def test_calls_lists_web_api_calls(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    await client.chat_postMessage(channel=INCIDENT, text="hello")
    await client.auth_test()
    status, calls = await _get(http, f"{emu.base_url}/_emulator/calls")
    assert status == 200
    assert [c["method"] for c in calls] == ["chat.postMessage", "auth.test"]
    status, posts = await _get(http, f"{emu.base_url}/_emulator/calls?method=chat.postMessage")
    assert len(posts) == 1
    assert set(posts[0]) >= {"method", "args", "response", "http_status"}
    assert posts[0]["args"]["text"] == "hello"
    assert posts[0]["response"]["ok"] is True
    status, none = await _get(http, f"{emu.base_url}/_emulator/calls?method=views.publish")
    assert (status, none) == (200, [])
    status, messages = await _get(
        http, f"{emu.base_url}/_emulator/messages?channel={INCIDENT}&include_ephemeral=false")
    assert [m["text"] for m in messages] == ["hello"]


async def test_click_is_delivered(
    emu: SlackEmulator, app: SlackReceiver, http: aiohttp.ClientSession
) -> None:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    posted = await client.chat_postMessage(channel=INCIDENT, text="Roll back?", blocks=[
        {"type": "actions", "block_id": "decide", "elements": [
            {"type": "button", "action_id": "confirm", "value": "rb-42",
             "text": {"type": "plain_text", "text": "Confirm"}}]}])
    status, result = await _post(http, f"{emu.base_url}/_emulator/click", {
        "app_url": app.url, "action_id": "confirm", "user_id": "U0BOB",
        "channel_id": INCIDENT, "message_ts": posted["ts"]})
    assert status == 200
    assert result["status"] == 200
    payload = json.loads(app.forms[-1]["payload"])
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "confirm", "decide", "rb-42")
    assert payload["user"]["id"] == "U0BOB"
    assert payload["message"]["ts"] == posted["ts"]


async def test_bad_requests_are_explained(
    emu: SlackEmulator, app: SlackReceiver, http: aiohttp.ClientSession
) -> None:
    control = f"{emu.base_url}/_emulator"
    status, body = await _post(http, f"{control}/click", {
        "app_url": app.url, "action_id": "confirm", "user_id": "U0BOB",
        "channel_id": INCIDENT, "message_ts": "1.000001"})
    assert status == 400 and "no message" in body["error"]
    status, body = await _post(http, f"{control}/command", {"app_url": app.url, "text": "api"})
    assert status == 400 and "user_id is required" in body["error"]
    status, body = await _post(http, f"{control}/command", ["not", "an", "object"])
    assert status == 400 and "JSON object" in body["error"]
    async with http.post(f"{control}/command", data=b"{nope") as resp:
        assert resp.status == 400
    status, body = await _get(http, f"{control}/messages")
    assert status == 400 and "channel" in body["error"]
    assert not app.forms


async def test_unreachable_app_is_a_502(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status, body = await _post(http, f"{emu.base_url}/_emulator/command", {
        "app_url": f"http://127.0.0.1:{port}/slack/events", "text": "api",
        "user_id": "U0ALICE", "channel_id": INCIDENT})
    assert status == 502
    assert "delivery to" in body["error"]
