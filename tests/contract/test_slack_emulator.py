"""The Slack emulator speaks Slack as the real clients see it: slack_sdk's
AsyncWebClient and AsyncWebhookClient, its SignatureVerifier, and slack_bolt."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from integrations.emulators.slack import SlackCall, SlackEmulator
from tests.contract.conftest import SlackReceiver

SECRET = "emulator-signing-secret"
INCIDENT = "C0INCIDENT"


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(signing_secret=SECRET) as emulator:
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[SlackReceiver]:
    async with SlackReceiver(SECRET) as rec:
        yield rec


def _approval_blocks() -> list[dict]:
    return [
        SectionBlock(block_id="summary", text="*Rollback* `medicalcor-api` to `00014-def`?")
        .to_dict(),
        ActionsBlock(block_id="decide", elements=[
            ButtonElement(text="Approve", action_id="approve", value="req-1", style="primary"),
            ButtonElement(text="Reject", action_id="reject", value="req-1", style="danger"),
        ]).to_dict(),
    ]


async def test_auth_test_and_bad_tokens(emu: SlackEmulator, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == (
        "U0ROLLBOT", "B0ROLLBOT", "T0EMULATE")
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(token="xoxb-wrong", base_url=emu.api_url).auth_test()
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(base_url=emu.api_url).chat_postMessage(channel=INCIDENT, text="x")
    assert err.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.explode")
    assert err.value.response["error"] == "unknown_method"
    assert [c.method for c in emu.calls] == [
        "auth.test", "auth.test", "chat.postMessage", "chat.explode"]


async def test_messages_threads_updates_and_permalinks(
        emu: SlackEmulator, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=INCIDENT, text="Rollback requested",
                                           blocks=_approval_blocks())
    ts = posted["ts"]
    assert posted["channel"] == INCIDENT and posted["message"]["blocks"][1]["type"] == "actions"
    reply = await client.chat_postMessage(channel=INCIDENT, text="Started", thread_ts=ts)
    broadcast = await client.chat_postMessage(channel=INCIDENT, text="Done", thread_ts=ts,
                                              reply_broadcast=True)
    assert ts < reply["ts"] < broadcast["ts"]
    assert "." in ts and len(ts.split(".")[1]) == 6

    updated = await client.chat_update(channel=INCIDENT, ts=ts, text="Approved",
                                       blocks=[SectionBlock(text="Approved by alice")])
    assert updated["message"]["text"] == "Approved"

    msgs = emu.messages(INCIDENT)
    assert [m["ts"] for m in msgs] == [ts, reply["ts"], broadcast["ts"]]
    assert msgs[0]["text"] == "Approved" and msgs[0]["user"] == "U0ROLLBOT"
    assert msgs[0]["blocks"][0]["text"]["text"] == "Approved by alice"
    assert "thread_ts" not in msgs[0] and msgs[0]["reply_count"] == 2
    assert msgs[1]["thread_ts"] == ts and msgs[2]["subtype"] == "thread_broadcast"
    assert emu.thread(INCIDENT, ts) == msgs

    link = await client.chat_getPermalink(channel=INCIDENT, message_ts=ts)
    assert link["permalink"] == (
        f"https://emulated.slack.test/archives/{INCIDENT}/p{ts.replace('.', '')}")

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=INCIDENT, ts="1.000001", text="nope")
    assert err.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0NOPE", text="x")
    assert err.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=INCIDENT, text="long", blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    assert err.value.response["error"] == "invalid_blocks"
    # The recorded args hold decoded blocks, not JSON strings.
    assert emu.calls_to("chat.postMessage")[0].args["blocks"][0]["block_id"] == "summary"


async def test_form_encoded_bodies_with_json_strings(emu: SlackEmulator) -> None:
    form = {"token": emu.bot_token, "channel": INCIDENT, "text": "form",
            "blocks": json.dumps([{"type": "divider"}])}
    async with aiohttp.ClientSession() as http, \
            http.post(emu.api_url + "chat.postMessage", data=form) as resp:
        body = await resp.json()
    assert body["ok"], body
    assert emu.messages(INCIDENT)[-1]["blocks"] == [{"type": "divider"}]


async def test_ephemeral_views_and_directory(emu: SlackEmulator, client: AsyncWebClient) -> None:
    eph = await client.chat_postEphemeral(channel=INCIDENT, user="U0ALICE", text="only you")
    [stored] = emu.ephemeral_messages(INCIDENT, "U0ALICE")
    assert stored["ts"] == eph["message_ts"] and stored["visible_to"] == "U0ALICE"
    assert emu.messages(INCIDENT, include_ephemeral=False) == []

    view = await client.views_publish(user_id="U0BOB", view={
        "type": "home", "blocks": [SectionBlock(text="Recent rollbacks").to_dict()]})
    assert view["view"]["type"] == "home"
    home = emu.home_view("U0BOB")
    assert home is not None and home["blocks"][0]["text"]["text"] == "Recent rollbacks"

    alice = await client.users_info(user="U0ALICE")
    assert alice["user"]["name"] == "alice" and alice["user"]["is_admin"] is False
    emu.add_user("U0DAVE", "dave", "Dave Admin", is_admin=True)
    assert (await client.users_info(user="U0DAVE"))["user"]["is_admin"] is True
    channel = await client.conversations_info(channel=INCIDENT)
    assert channel["channel"]["name"] == "inc-api-outage"
    emu.add_usergroup("S0APPROVE", "rollback-approvers", ["U0CAROL", "U0DAVE"])
    members = await client.usergroups_users_list(usergroup="S0APPROVE")
    assert members["users"] == ["U0CAROL", "U0DAVE"]

    for call, error in (
        (client.users_info(user="U0NOBODY"), "user_not_found"),
        (client.conversations_info(channel="C0NOPE"), "channel_not_found"),
        (client.usergroups_users_list(usergroup="S0NOPE"), "no_such_subteam"),
    ):
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == error


async def test_injected_faults(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.inject("chat.postMessage", retry_after=0)
    retrying = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url,
                              retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    posted = await retrying.chat_postMessage(channel=INCIDENT, text="after a 429")
    assert posted["ok"]
    statuses = [c.http_status for c in emu.calls_to("chat.postMessage")]
    assert statuses == [429, 200]

    emu.inject("chat.update", error="ratelimited", count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.chat_update(channel=INCIDENT, ts=posted["ts"], text="x")
        assert err.value.response["error"] == "ratelimited"
    await client.chat_update(channel=INCIDENT, ts=posted["ts"], text="third time lucky")

    emu.inject("users.info", status=503)
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U0ALICE")
    assert err.value.response.status_code == 503


async def test_wait_for_future_calls_and_timeout_dump(
        emu: SlackEmulator, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel=INCIDENT, text="first")
        await client.chat_postMessage(channel=INCIDENT, text="second")

    task = asyncio.create_task(later())
    call = await emu.wait_for("chat.postMessage", lambda c: c.args["text"] == "second",
                              timeout=2)
    await task
    assert isinstance(call, SlackCall) and call.response["ok"]
    # Already recorded calls match too.
    assert (await emu.wait_for("chat.postMessage")).args["text"] == "first"
    with pytest.raises(AssertionError, match=r"(?s)no matching chat\.update.*chat\.postMessage"):
        await emu.wait_for("chat.update", timeout=0.05)


async def test_send_command_is_signed_and_shaped_like_slack(
        emu: SlackEmulator, receiver: SlackReceiver) -> None:
    receiver.ack_body = json.dumps({"response_type": "ephemeral", "text": "On it"})
    called = time.monotonic()
    result = await emu.send_command(receiver.url, "api 00014-def", user_id="U0ALICE",
                                    channel_id=INCIDENT)
    assert result.status == 200 and result.acked_in_time
    # When the signed request left: a benchmark's clock starts there.
    assert called <= result.sent_at <= called + result.elapsed + 1
    form = {k: v[0] for k, v in parse_qs(receiver.bodies[0].decode()).items()}
    assert form["command"] == "/rollback" and form["text"] == "api 00014-def"
    assert (form["user_id"], form["user_name"]) == ("U0ALICE", "alice")
    assert (form["channel_id"], form["channel_name"]) == (INCIDENT, "inc-api-outage")
    assert form["response_url"] == result.response_url
    for field in ("token", "team_id", "team_domain", "api_app_id", "trigger_id"):
        assert form[field]
    # The ack body is shown to the invoking user, as Slack does.
    [ack] = emu.ephemeral_messages(INCIDENT, "U0ALICE")
    assert ack["text"] == "On it" and ack["ts"] == result.message_ts

    now = int(time.time())
    for kwargs in ({"signing_secret": "wrong"}, {"timestamp": now - 600},
                   {"headers_override": {"X-Slack-Signature": None}}):
        bad = await emu.send_command(receiver.url, "api", user_id="U0ALICE",
                                     channel_id=INCIDENT, **kwargs)  # type: ignore[arg-type]
        assert bad.status == 401, kwargs
    body = b"token=x&text=y"
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, emu.sign(body))
    assert not verifier.is_valid_request(body, emu.sign(body, secret="other"))
    assert not verifier.is_valid_request(body, emu.sign(body, timestamp=now - 301))


async def test_click_payloads_and_response_urls(
        emu: SlackEmulator, client: AsyncWebClient, receiver: SlackReceiver) -> None:
    posted = await client.chat_postMessage(channel=INCIDENT, text="Approve?",
                                           blocks=_approval_blocks())
    result = await emu.click(receiver.url, action_id="approve", user_id="U0BOB",
                             channel_id=INCIDENT, message_ts=posted["ts"])
    assert result.status == 200
    payload = json.loads(parse_qs(receiver.bodies[-1].decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U0BOB", "username": "bob", "name": "bob",
                               "team_id": "T0EMULATE"}
    assert payload["container"] == {"type": "message", "message_ts": posted["ts"],
                                    "channel_id": INCIDENT, "is_ephemeral": False}
    assert payload["channel"] == {"id": INCIDENT, "name": "inc-api-outage"}
    assert payload["message"]["blocks"][1]["block_id"] == "decide"
    [action] = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve", "decide", "req-1", "button")
    for field in ("api_app_id", "token", "trigger_id", "team", "response_url"):
        assert payload[field]

    # replace_original through the click's response_url edits the clicked message.
    webhook = AsyncWebhookClient(result.response_url)
    sent = await webhook.send(text="Approved by bob", replace_original=True)
    assert (sent.status_code, sent.body) == (200, "ok")
    assert emu.messages(INCIDENT)[0]["text"] == "Approved by bob"
    call = await emu.wait_for("response_url")
    assert call.args["replace_original"] is True and call.args["text"] == "Approved by bob"

    # A slash command's response_url: ephemeral by default, in_channel on request.
    cmd = await emu.send_command(receiver.url, "api", user_id="U0ALICE", channel_id=INCIDENT)
    hook = AsyncWebhookClient(cmd.response_url)
    await hook.send(text="pick a revision", blocks=_approval_blocks())
    await hook.send(text="Rolling back", response_type="in_channel")
    [eph] = emu.ephemeral_messages(INCIDENT, "U0ALICE")
    assert eph["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert emu.messages(INCIDENT, include_ephemeral=False)[-1]["text"] == "Rolling back"

    # Clicking in an ephemeral message: Slack sends no `message`, only the container.
    await emu.click(receiver.url, action_id="reject", user_id="U0ALICE", channel_id=INCIDENT,
                    message_ts=eph["ts"])
    payload = json.loads(parse_qs(receiver.bodies[-1].decode())["payload"][0])
    assert payload["container"]["is_ephemeral"] is True and "message" not in payload
    await AsyncWebhookClient(payload["response_url"]).send(delete_original=True)
    assert emu.ephemeral_messages(INCIDENT) == []

    for _ in range(3):  # five uses per response_url, as in Slack
        await hook.send(text="again")
    assert (await hook.send(text="too many")).status_code == 404


async def test_bolt_app_round_trip(emu: SlackEmulator) -> None:
    app = AsyncApp(token=emu.bot_token, signing_secret=SECRET,
                   client=AsyncWebClient(token=emu.bot_token, base_url=emu.api_url))

    @app.command("/rollback")
    async def rollback(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(text="Approve?", blocks=_approval_blocks(), response_type="in_channel")

    @app.action("approve")
    async def approve(ack: AsyncAck, body: dict, client: AsyncWebClient,
                      respond: AsyncRespond) -> None:
        await ack()
        await client.chat_postMessage(channel=body["channel"]["id"],
                                      thread_ts=body["container"]["message_ts"],
                                      text=f"Approved by <@{body['user']['id']}>")
        await respond(text="Approved", replace_original=True)

    runner = web.AppRunner(app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        assert (await emu.send_command(url, "api", user_id="U0ALICE",
                                       channel_id=INCIDENT)).status == 200
        await emu.wait_for("response_url")
        [msg] = emu.messages(INCIDENT)
        assert (await emu.click(url, action_id="approve", user_id="U0BOB",
                                channel_id=INCIDENT, message_ts=msg["ts"])).status == 200
        await emu.wait_for("chat.postMessage")
        await emu.wait_for("response_url", lambda c: c.args.get("replace_original") is True)
        top, reply = emu.messages(INCIDENT)
        assert top["text"] == "Approved" and reply["thread_ts"] == msg["ts"]
        assert reply["text"] == "Approved by <@U0BOB>"
        bad = await emu.send_command(url, "api", user_id="U0ALICE", channel_id=INCIDENT,
                                     signing_secret="not-the-secret")
        assert bad.status == 401
    finally:
        await runner.cleanup()
