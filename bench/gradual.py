"""2c. Gradual rollbacks: how fast a bad step is undone, and analyses on time.

- Abort on failure: api's target revision answers half its requests 5xx; the
  rollout's analyses fail and, at the catalog's failure limit, it aborts. Timed from
  the moment that analysis' last metric read returns (the Monitoring emulator handing
  over its ListTimeSeries answer) to the previous split restored (the traffic
  assignment, when Cloud Run's operation is done), against the injected waits of the
  calls in between (each Google call's latency, the operation's delay).
- Abort click: a healthy rollout at its first step; the requester clicks Abort. Timed
  from the click leaving the Slack emulator to the split restored, against the same.
- Ten at once: the scale phase's ten services each start a gradual rollback in the
  same second; every analysis' start is compared with the time it was scheduled for
  (`due`, stored with each analysis).

The bench's catalog holds steps of 6 s analysed every 2 s (bench/run.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from typing import Any

import psycopg
from common import ALICE, API, GOOGLE_LATENCY, OPERATION_DELAY, SERVING
from e2e import TrafficWatch, reset_traffic, text_of, union_length
from scale import service_names

from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import EmuTrafficTarget

GRADUAL = "rollback.gradual"
ABORT = "rollout.abort"
LIST_TIME_SERIES = "google.monitoring.v3.MetricService/ListTimeSeries"
TARGET_SUFFIX = "00014-def"
_CHANNELS = iter(range(1, 10_000))


async def _start(emulated: EmulatedWorld, events_url: str, key: str) -> tuple[str, str]:
    """`/rollback <key> 00014-def --gradual` in a channel of its own, then Bob's Gradual;
    (channel, card ts)."""
    slack = emulated.slack
    n = next(_CHANNELS)
    channel = f"C0GRAD{n}"
    slack.add_channel(channel, f"inc-gradual-{n}")
    since = time.time()
    ack = await slack.send_command(events_url, f"{key} {TARGET_SUFFIX} --gradual",
                                   user_id=ALICE["user_id"], channel_id=channel,
                                   channel_name=f"inc-gradual-{n}")
    if ack.status != 200:
        raise RuntimeError(f"{key}: proposal not acked: {ack.status} {ack.body}")
    card = await slack.wait_for(
        "chat.postMessage", lambda c: c.time >= since and c.args.get("channel") == channel
        and "Rollback plan" in text_of(c), timeout=30)
    await asyncio.sleep(0.5)  # the proposal's job (and its baseline) done
    click = await slack.click(events_url, action_id=GRADUAL, user_id="U0BOB",
                              channel_id=channel, message_ts=card.response["ts"])
    if click.status != 200:
        raise RuntimeError(f"{key}: Gradual not acked: {click.status}")
    return channel, str(card.response["ts"])


async def _traffic_moves(name: str, count: int, within: float) -> list[float]:
    changed = asyncio.Event()
    TrafficWatch.event = changed
    try:
        async with asyncio.timeout(within):
            while len(TrafficWatch.times.get(name, [])) < count:
                await changed.wait()
                changed.clear()
    finally:
        TrafficWatch.event = None
    return TrafficWatch.times[name]


def _injected(emulated: EmulatedWorld, start: float, end: float) -> tuple[float, dict[str, int]]:
    """The injected waits in [start, end] (overlaps once), and the calls per method."""
    waits: list[tuple[float, float]] = []
    counts: dict[str, int] = {}
    for call in emulated.google.calls:
        if start <= call.time <= end:
            method = call.method.rsplit("/", 1)[-1]
            counts[method] = counts.get(method, 0) + 1
            if call.waited is not None:
                waits.append((max(call.waited[0], start), min(call.waited[1], end)))
    for began, finished in emulated.google.operation_timings().values():
        if start <= began <= end:
            waits.append((began, min(finished or end, end)))
    return union_length(waits), counts


async def _over(emulated: EmulatedWorld, channel: str) -> None:
    """The rollout's verdict in its thread (the service is free for the next run)."""
    await emulated.slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == channel and any(
            word in str(c.args.get("text", "")) for word in (
                "Rollback verified", "Stop and escalate")), timeout=60)


async def abort_on_failure(emulated: EmulatedWorld, events_url: str) -> dict[str, Any]:
    world = emulated.world
    reset_traffic(emulated)
    TrafficWatch.times[API] = []
    target = world.services[API].revisions[f"{API}-{TARGET_SUFFIX}"]
    healthy_rate = target.error_rate
    target.error_rate = 0.5
    try:
        began = time.monotonic()
        channel, _ = await _start(emulated, events_url, "api")
        step, restored = (await _traffic_moves(API, 2, 60))[:2]
        await _over(emulated, channel)
    finally:
        target.error_rate = healthy_rate
    reads = [c.answered for c in emulated.google.calls_to(LIST_TIME_SERIES)
             if c.answered is not None and began <= c.time and c.answered <= restored]
    last_read = max(reads)
    injected, calls = _injected(emulated, last_read, restored)
    took = restored - last_read
    return {"ms": took * 1000, "injected_ms": injected * 1000, "ratio": took / injected,
            "calls": calls, "step_at_s": step - began, "restored_split": world.serving(API)}


async def abort_click(emulated: EmulatedWorld, events_url: str) -> dict[str, Any]:
    slack = emulated.slack
    reset_traffic(emulated)
    TrafficWatch.times[API] = []
    channel, card_ts = await _start(emulated, events_url, "api")
    await _traffic_moves(API, 1, 30)
    await slack.wait_for("chat.update", lambda c: c.args.get("ts") == card_ts
                         and ABORT in text_of(c), timeout=10)
    await asyncio.sleep(0.2)
    click = await slack.click(events_url, action_id=ABORT, user_id=ALICE["user_id"],
                              channel_id=channel, message_ts=card_ts)
    if click.status != 200:
        raise RuntimeError(f"Abort not acked: {click.status}")
    restored = (await _traffic_moves(API, 2, 30))[1]
    await _over(emulated, channel)
    injected, calls = _injected(emulated, click.sent_at, restored)
    took = restored - click.sent_at
    return {"ms": took * 1000, "injected_ms": injected * 1000, "ratio": took / injected,
            "calls": calls, "restored_split": emulated.world.serving(API)}


async def ten_at_once(emulated: EmulatedWorld, events_url: str, count: int) -> dict[str, Any]:
    names = service_names(count)
    for name in names.values():  # the broken revision serves again
        emulated.world.services[name].traffic = [
            EmuTrafficTarget(revision=f"{name}-{SERVING.removeprefix(API + '-')}", percent=100)]
    since = dt.datetime.now(dt.UTC)
    channels = await asyncio.gather(*(_start(emulated, events_url, key) for key in names))
    await asyncio.gather(*(_over(emulated, channel) for channel, _ in channels))
    async with await psycopg.AsyncConnection.connect(emulated.database_url) as conn:
        cur = await conn.execute(
            "SELECT subject, rollout FROM changes WHERE kind = 'gradual' AND created_at >= %s "
            "AND subject = ANY(%s)", (since, list(names)))
        rows = await cur.fetchall()
    late = [(dt.datetime.fromisoformat(a["at"]) - dt.datetime.fromisoformat(a["due"]))
            .total_seconds() for _, rollout in rows for a in rollout["analyses"] if a.get("due")]
    return {"rollouts": len(rows), "analyses": len(late),
            "late_max_s": max(late), "late_p50_s": statistics.median(late),
            "late_min_s": min(late)}


async def measure_gradual(emulated: EmulatedWorld, events_url: str,
                          count: int) -> dict[str, Any]:
    emulated.google.faults.latency_all = GOOGLE_LATENCY
    emulated.google.operation_delay = OPERATION_DELAY
    try:
        failure = await abort_on_failure(emulated, events_url)
        print(f"  failing analysis→split restored {failure['ms']:.1f} ms (injected "
              f"{failure['injected_ms']:.1f} ms, ×{failure['ratio']:.2f})", flush=True)
        click = await abort_click(emulated, events_url)
        print(f"  Abort click→split restored {click['ms']:.1f} ms (injected "
              f"{click['injected_ms']:.1f} ms, ×{click['ratio']:.2f})", flush=True)
        together = await ten_at_once(emulated, events_url, count)
        print(f"  {together['rollouts']} rollouts at once: {together['analyses']} analyses, "
              f"started late by at most {together['late_max_s']:.2f} s (median "
              f"{together['late_p50_s']:.2f} s)", flush=True)
    finally:
        emulated.google.faults.clear()
    return {"abort_on_failure": failure, "abort_click": click, "ten_at_once": together}
