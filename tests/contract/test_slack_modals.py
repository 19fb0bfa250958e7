"""Modals in the Slack emulator as slack_sdk and Bolt see them: views.open from a
trigger id Slack issued (less than 3 s ago, once), Slack's view checks, and a
view_submission Bolt parses, closed, kept open with errors, or refused unsigned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.emulators.slack import SlackEmulator
from integrations.emulators.slack.views import TRIGGER_TTL_SECONDS

SECRET = "emulator-signing-secret"
INCIDENT = "C0INCIDENT"


def modal(**over: Any) -> dict[str, Any]:
    view = {"type": "modal", "callback_id": "why", "private_metadata": "42",
            "title": {"type": "plain_text", "text": "Override blocker"},
            "submit": {"type": "plain_text", "text": "Override"},
            "blocks": [{"type": "input", "block_id": "reason",
                        "label": {"type": "plain_text", "text": "Why?"},
                        "element": {"type": "plain_text_input", "action_id": "text",
                                    "multiline": True}}]}
    view.update(over)
    return view


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(signing_secret=SECRET) as emulator:
        yield emulator


SEEN: list[dict[str, Any]] = []  # what the app's view listener took in


@pytest_asyncio.fixture
async def app_url(emu: SlackEmulator) -> AsyncIterator[str]:
    """A Bolt app: /cmd opens the modal; its submission needs 10 characters."""
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    app = AsyncApp(signing_secret=SECRET, client=client)
    seen = SEEN
    seen.clear()

    @app.command("/cmd")
    async def cmd(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=modal())

    @app.view("why")
    async def why(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = view["state"]["values"]["reason"]["text"]["value"]
        if len(text) < 10:
            await ack(response_action="errors", errors={"reason": "At least 10 characters"})
            return
        seen.append({"user": body["user"]["id"], "text": text,
                     "metadata": view["private_metadata"]})
        await ack()

    runner = web.AppRunner(app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    await runner.cleanup()


async def _opened(emu: SlackEmulator, url: str) -> dict[str, Any]:
    await emu.send_command(url, "", user_id="U0BOB", channel_id=INCIDENT, command="/cmd")
    call = await emu.wait_for("views.open")
    assert call.ok, call.response
    [view] = emu.open_views("U0BOB")
    return view


async def test_submit_closes_on_an_empty_ack_and_bolt_reads_the_state(
        emu: SlackEmulator, app_url: str) -> None:
    view = await _opened(emu, app_url)
    assert view["id"].startswith("V") and view["private_metadata"] == "42"
    result = await emu.submit_view(app_url, user_id="U0BOB",
                                   values={"text": "DBA says it is compatible"})
    assert result.status == 200 and result.view_errors is None
    assert emu.open_views("U0BOB") == []
    assert SEEN == [{"user": "U0BOB", "text": "DBA says it is compatible", "metadata": "42"}]


async def test_errors_keep_the_modal_open(emu: SlackEmulator, app_url: str) -> None:
    await _opened(emu, app_url)
    result = await emu.submit_view(app_url, user_id="U0BOB", values={"text": "short"})
    assert result.view_errors == {"reason": "At least 10 characters"}
    assert len(emu.open_views("U0BOB")) == 1


async def test_a_required_input_left_empty_cannot_be_submitted(
        emu: SlackEmulator, app_url: str) -> None:
    await _opened(emu, app_url)
    with pytest.raises(ValueError, match="'Why\\?' is empty"):
        await emu.submit_view(app_url, user_id="U0BOB", values={})


async def test_an_unsigned_submission_is_refused(emu: SlackEmulator, app_url: str) -> None:
    await _opened(emu, app_url)
    result = await emu.submit_view(app_url, user_id="U0BOB", values={"text": "long enough!"},
                                   signing_secret="not-the-secret")
    assert result.status == 401
    assert len(emu.open_views("U0BOB")) == 1 and SEEN == []


async def test_trigger_ids_are_issued_once_and_expire(emu: SlackEmulator) -> None:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    with pytest.raises(SlackApiError, match="invalid_trigger_id"):
        await client.views_open(trigger_id="1.2.never-issued", view=modal())
    emu.api.views.issue("t-1", "U0BOB")
    await client.views_open(trigger_id="t-1", view=modal())
    with pytest.raises(SlackApiError, match="exchanged_trigger_id"):
        await client.views_open(trigger_id="t-1", view=modal())
    now = [1000.0]
    emu.api.views.clock = lambda: now[0]
    emu.api.views.issue("t-2", "U0BOB")
    now[0] += TRIGGER_TTL_SECONDS + 0.1
    with pytest.raises(SlackApiError, match="expired_trigger_id"):
        await client.views_open(trigger_id="t-2", view=modal())


@pytest.mark.parametrize("view, problem", [
    (modal(type="home"), "must be 'modal'"),
    (modal(title={"type": "plain_text", "text": "x" * 25}), "1 to 24 characters"),
    ({k: v for k, v in modal().items() if k != "submit"}, "required when the view has inputs"),
    (modal(private_metadata="x" * 3001), "at most 3000 characters"),
])
async def test_bad_views_are_refused_as_slack_does(emu: SlackEmulator, view: dict[str, Any],
                                                   problem: str) -> None:
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    emu.api.views.issue("t", "U0BOB")
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(trigger_id="t", view=view)
    assert refused.value.response["error"] == "invalid_arguments"
    assert any(problem in m for m in refused.value.response["response_metadata"]["messages"])
