"""RollbotApp's request context: Bolt's keys, without Bolt's per-request web client.

RollbotApp overrides a private AsyncApp method (`_init_context`); this compares its
result with Bolt's own on every run, so a Bolt upgrade that adds a context key fails
here instead of leaving a listener without it."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlencode

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import RollbotApp
from bot.deps import Deps


def _command_request() -> AsyncBoltRequest:
    body = urlencode({"command": "/rollback", "text": "api 00014-def", "team_id": "T0TEAM",
                      "user_id": "U0ALICE", "channel_id": "C0INCIDENT"})
    return AsyncBoltRequest(
        body=body, headers={"content-type": ["application/x-www-form-urlencoded"]})


async def test_context_has_bolts_keys_and_shares_the_apps_client() -> None:
    client = AsyncWebClient(token="xoxb-test-token", base_url="http://127.0.0.1:9/api/")
    app = RollbotApp(cast(Deps, None), client=client, signing_secret="s" * 32,
                     process_before_response=True)
    ours, bolts = _command_request(), _command_request()

    app._init_context(ours)
    AsyncApp._init_context(app, bolts)

    assert set(ours.context) == set(bolts.context)
    assert ours.context.client is client  # shared: no client built per request
    assert bolts.context.client is not client  # what Bolt builds, and rollbot skips
    assert bolts.context.client.token == client.token
    for key in set(ours.context) - {"client"}:
        assert ours.context[key] == bolts.context[key], key
