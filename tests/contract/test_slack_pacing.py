"""SlackOut against the real Slack emulator: per-channel post pacing, coalesced
updates, 429 Retry-After handled without losing anything, permalinks asked once."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.messages.base import Message
from bot.slack_out import SlackOut
from integrations.emulators.slack import SlackEmulator

INTERVAL = 0.1
INCIDENT, GENERAL = "C0INCIDENT", "C0GENERAL"


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(signing_secret="pacing-secret") as emulator:
        yield emulator


@pytest_asyncio.fixture
async def out(emu: SlackEmulator) -> AsyncIterator[SlackOut]:
    # burst=1: the strict one-per-interval pace, to test the spacing itself.
    slack = SlackOut.connect(emu.bot_token, emu.api_url, min_interval=INTERVAL, burst=1)
    yield slack
    await slack.close()


def texts(emu: SlackEmulator, channel: str) -> list[str]:
    return [str(m.get("text")) for m in emu.messages(channel, include_ephemeral=False)]


async def test_posts_to_one_channel_are_paced_and_ordered(
        emu: SlackEmulator, out: SlackOut) -> None:
    started = time.monotonic()
    await asyncio.gather(*(out.post(INCIDENT, Message(text=f"m{i}")) for i in range(5)))
    assert time.monotonic() - started >= 4 * INTERVAL
    calls = emu.calls_to("chat.postMessage")
    assert [c.args["text"] for c in calls] == [f"m{i}" for i in range(5)]
    gaps = [b.time - a.time for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= INTERVAL * 0.9, gaps
    assert texts(emu, INCIDENT) == [f"m{i}" for i in range(5)]


async def test_sequential_posts_wait_between_them(out: SlackOut) -> None:
    await out.post(INCIDENT, Message(text="first"))
    started = time.monotonic()
    await out.post(INCIDENT, Message(text="second"))
    assert time.monotonic() - started >= INTERVAL * 0.9


async def test_channels_are_paced_independently(emu: SlackEmulator) -> None:
    interval = 0.2
    slack = SlackOut.connect(emu.bot_token, emu.api_url, min_interval=interval, burst=1)
    try:
        started = time.monotonic()
        await asyncio.gather(*(slack.post(channel, Message(text=f"{channel}-{i}"))
                               for i in range(3) for channel in (INCIDENT, GENERAL)))
        elapsed = time.monotonic() - started
    finally:
        await slack.close()
    assert 2 * interval <= elapsed < 4.5 * interval  # serialized would take >= 5 intervals
    assert texts(emu, INCIDENT) == [f"{INCIDENT}-{i}" for i in range(3)]
    assert texts(emu, GENERAL) == [f"{GENERAL}-{i}" for i in range(3)]


async def test_rapid_updates_are_coalesced_and_the_last_wins(
        emu: SlackEmulator, out: SlackOut) -> None:
    ts = await out.post(INCIDENT, Message(text="v0"))
    await asyncio.gather(*(out.update(INCIDENT, ts, Message(text=f"v{i}"))
                           for i in range(1, 11)))
    updates = emu.calls_to("chat.update")
    assert 1 <= len(updates) < 10
    assert updates[-1].args["text"] == "v10"
    assert texts(emu, INCIDENT) == ["v10"]


async def test_updates_while_one_is_in_flight_send_only_the_latest(
        emu: SlackEmulator, out: SlackOut) -> None:
    ts = await out.post(INCIDENT, Message(text="v0"))
    first = asyncio.create_task(out.update(INCIDENT, ts, Message(text="v1")))
    await asyncio.sleep(0)  # v1 is in flight
    rest = [asyncio.create_task(out.update(INCIDENT, ts, Message(text=f"v{i}")))
            for i in range(2, 11)]
    await asyncio.gather(first, *rest)
    assert [c.args["text"] for c in emu.calls_to("chat.update")] == ["v1", "v10"]
    assert texts(emu, INCIDENT) == ["v10"]
    assert not out._updates  # nothing left behind per message


async def test_updates_of_different_messages_are_not_merged(
        emu: SlackEmulator, out: SlackOut) -> None:
    a = await out.post(INCIDENT, Message(text="a0"))
    b = await out.post(INCIDENT, Message(text="b0"))
    await asyncio.gather(out.update(INCIDENT, a, Message(text="a1")),
                         out.update(INCIDENT, b, Message(text="b1")))
    assert texts(emu, INCIDENT) == ["a1", "b1"]


async def test_rate_limited_post_and_update_lose_nothing(
        emu: SlackEmulator, out: SlackOut) -> None:
    zero = await out.post(INCIDENT, Message(text="zero"))
    emu.inject("chat.postMessage", status=429, retry_after=1, count=1)
    emu.inject("chat.update", status=429, retry_after=1, count=1)
    started = time.monotonic()
    await asyncio.gather(
        out.post(INCIDENT, Message(text="one")), out.post(INCIDENT, Message(text="two")),
        *(out.update(INCIDENT, zero, Message(text=f"zero v{i}")) for i in range(1, 6)))
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    posts = emu.calls_to("chat.postMessage")[1:]
    assert [(c.http_status, c.args["text"]) for c in posts] == [
        (429, "one"), (200, "one"), (200, "two")]
    updates = emu.calls_to("chat.update")
    assert updates[0].http_status == 429 and updates[-1].args["text"] == "zero v5"
    assert texts(emu, INCIDENT) == ["zero v5", "one", "two"]


async def test_failed_update_is_raised_and_the_next_one_still_goes(
        emu: SlackEmulator, out: SlackOut) -> None:
    ts = await out.post(INCIDENT, Message(text="v0"))
    emu.inject("chat.update", error="msg_too_long", count=1)
    with pytest.raises(Exception, match="msg_too_long"):
        await out.update(INCIDENT, ts, Message(text="v1"))
    await out.update(INCIDENT, ts, Message(text="v2"))
    assert texts(emu, INCIDENT) == ["v2"]


async def test_a_permalink_is_asked_once_per_message_and_a_failure_is_not_kept(
        emu: SlackEmulator, out: SlackOut) -> None:
    first = await out.post(INCIDENT, Message(text="card one"))
    second = await out.post(INCIDENT, Message(text="card two"))
    emu.inject("chat.getPermalink", error="message_not_found", count=1)
    assert await out.permalink(INCIDENT, first) is None  # said as "no link", not raised
    link = await out.permalink(INCIDENT, first)
    assert link and first.replace(".", "") in link
    assert await out.permalink(INCIDENT, first) == link
    other = await out.permalink(INCIDENT, second)
    assert other and other != link
    assert len(emu.calls_to("chat.getPermalink")) == 3  # the failure, then once each


def test_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        SlackOut(client=None, min_interval=-1)  # type: ignore[arg-type]


async def test_a_short_burst_goes_out_at_once_then_the_pace_holds(emu: SlackEmulator) -> None:
    interval = 0.3
    slack = SlackOut.connect(emu.bot_token, emu.api_url, min_interval=interval, burst=3)
    try:
        started = time.monotonic()
        for i in range(3):
            await slack.post(INCIDENT, Message(text=f"b{i}"))
        burst_time = time.monotonic() - started
        await slack.post(INCIDENT, Message(text="b3"))
        paced_time = time.monotonic() - started
    finally:
        await slack.close()
    assert burst_time < interval  # like Slack: short bursts above 1/s are allowed
    assert paced_time >= interval * 0.9  # the fourth waits for a token
    assert texts(emu, INCIDENT) == [f"b{i}" for i in range(4)]
