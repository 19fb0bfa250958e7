"""File uploads as `files_upload_v2` makes them (an upload URL, the bytes, then
files.completeUploadExternal): SlackOut against the Slack emulator, and the
emulator's answers to bad uploads, Slack's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.messages.base import Message
from bot.slack_out import SlackOut
from integrations.emulators.slack import SlackEmulator

INCIDENT = "C0INCIDENT"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(signing_secret="files-secret") as emulator:
        yield emulator


@pytest_asyncio.fixture
async def out(emu: SlackEmulator) -> AsyncIterator[SlackOut]:
    slack = SlackOut.connect(emu.bot_token, emu.api_url, min_interval=0.0)
    yield slack
    await slack.close()


async def test_a_chart_goes_into_the_thread_through_the_three_calls(
        emu: SlackEmulator, out: SlackOut) -> None:
    parent = await out.post(INCIDENT, Message(text="Initiating rollback"))
    await out.upload_file(INCIDENT, parent, "gradual-7-step1.png", PNG,
                          title="Gradual rollback of api", comment="3 analyses")
    methods = [c.method for c in emu.calls]
    assert methods[-2:] == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    complete = emu.calls_to("files.completeUploadExternal")[-1]
    assert complete.ok and complete.args["thread_ts"] == parent
    shared = complete.response["files"][0]
    assert (shared["name"], shared["title"], shared["mimetype"], shared["size"]) == (
        "gradual-7-step1.png", "Gradual rollback of api", "image/png", len(PNG))
    assert emu.api.files.content(shared["id"]) == PNG  # the bytes, intact
    reply = emu.messages(INCIDENT)[-1]
    assert reply["thread_ts"] == parent and reply["text"] == "3 analyses"
    assert reply["files"][0]["id"] == shared["id"]


async def test_the_emulator_refuses_bad_uploads_as_slack_does(emu: SlackEmulator) -> None:
    headers = {"Authorization": f"Bearer {emu.bot_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async def call(method: str, **data: str) -> dict[str, object]:
            async with http.post(emu.api_url + method, data=data) as response:
                return dict(await response.json())

        assert (await call("files.getUploadURLExternal", filename="a.png"))["error"] == \
            "invalid_arguments"  # no length
        assert (await call("files.getUploadURLExternal", filename="", length="3"))["error"] \
            == "invalid_arguments"
        issued = await call("files.getUploadURLExternal", filename="a.png", length="4")
        assert issued["ok"] is True
        url, file_id = str(issued["upload_url"]), str(issued["file_id"])
        assert url.startswith("http://127.0.0.1:")

        # Not uploaded yet: sharing it is file_not_found; so is an unknown id.
        files = f'[{{"id": "{file_id}", "title": "a"}}]'
        assert (await call("files.completeUploadExternal", files=files,
                           channel_id=INCIDENT))["error"] == "file_not_found"
        assert (await call("files.completeUploadExternal", files='[{"id": "F0NOPE"}]',
                           channel_id=INCIDENT))["error"] == "file_not_found"
        async with http.post(url, data=b"too long") as response:
            assert response.status == 400  # not the declared length
        async with http.post(url, data=b"1234") as response:
            assert response.status == 200
        assert (await call("files.completeUploadExternal", files=files,
                           channel_id="C0NOWHERE"))["error"] == "channel_not_found"
        assert (await call("files.completeUploadExternal", files="not json",
                           channel_id=INCIDENT))["error"] == "invalid_arguments"
        done = await call("files.completeUploadExternal", files=files, channel_id=INCIDENT)
        assert done["ok"] is True


async def test_a_failed_upload_raises_for_the_caller_to_log(
        emu: SlackEmulator, out: SlackOut) -> None:
    with pytest.raises((SlackApiError, SlackRequestError)):
        await out.upload_file("C0NOWHERE", None, "x.png", PNG, title="x")
