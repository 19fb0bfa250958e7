"""2b. Scale: an outage that hits everything, ten rollbacks confirmed in one second.

Ten more services in the emulated world (copies of medicalcor-api's revisions, the
newest broken), each its own Cloud Run service, catalog entry and health URL on the
target app. A plan card is posted for each in its own incident channel; once the
proposals' jobs are done, the ten Confirm clicks are sent together, signed, through
the Slack emulator, under the Google latency of the lone end-to-end runs. Each is
timed from its click leaving the emulator to its service's traffic change, and the
median is compared with the lone rollbacks' median of the same run. A Confirm's job
runs verification inline and holds its worker slot until the verdict, so a rollback
that found no free slot would start only after another's verdict: the phase notes
when each job's first Cloud Run call arrived, and whether any came after a verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import statistics
import time
from collections.abc import Iterator
from typing import Any

from acks import drain_jobs
from common import ALICE, API, CONFIRM, GOOGLE_LATENCY, OPERATION_DELAY, SERVING
from e2e import TrafficWatch, WatchedService, text_of, watched

from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import EmuTrafficTarget, World

SCALE_TARGET = "00014-def"


def service_names(count: int) -> dict[str, str]:
    """Catalog key -> Cloud Run service name (the emulated catalog's naming)."""
    return {f"svc-{i:02d}": f"medicalcor-svc-{i:02d}" for i in range(1, count + 1)}


def scale_services(world: World, count: int) -> dict[str, WatchedService]:
    """Copies of medicalcor-api, the same revisions under each one's name, the newest
    (broken) serving; watched, so each traffic change is timed. Not yet in the world."""
    api = world.services[API]
    serving_suffix = SERVING.removeprefix(API + "-")
    services = {}
    for name in service_names(count).values():
        service = copy.deepcopy(api)
        service.name, service.uri = name, f"https://{name}-abc123-ey.a.run.app"
        service.revisions = {}
        for revision in copy.deepcopy(list(api.revisions.values())):
            revision.name = name + revision.name.removeprefix(API)
            service.revisions[revision.name] = revision
        service.traffic = [EmuTrafficTarget(revision=f"{name}-{serving_suffix}", percent=100)]
        services[name] = watched(service)
    return services


@contextlib.contextmanager
def in_world_while(world: World, services: dict[str, WatchedService]) -> Iterator[None]:
    """The services in the world for a while: as the emulators start, since their
    catalog lists every service of the world then (the bot reads it once). Until
    their phase they stay out of it: the target app simulates traffic for every
    service in the world (a tick every 250 ms, ~0.35 ms of CPU for twelve services
    against ~0.06 ms for two, in the emulators' process), which the lone rollbacks
    would pay for."""
    world.services.update(services)
    try:
        yield
    finally:
        for name in services:
            world.services.pop(name, None)


async def post_plan_card(emulated: EmulatedWorld, events_url: str, key: str,
                         n: int) -> tuple[str, str]:
    """`/rollback <key> 00014-def` in an incident channel of its own; (channel, card ts)."""
    slack = emulated.slack
    channel = f"C0SCALE{n}"
    slack.add_channel(channel, f"inc-everything-{n}")
    since = time.time()
    ack = await slack.send_command(events_url, f"{key} {SCALE_TARGET}", user_id=ALICE["user_id"],
                                   channel_id=channel, channel_name=f"inc-everything-{n}")
    if ack.status != 200:
        raise RuntimeError(f"{key}: proposal not acked: {ack.status} {ack.body}")
    card = await slack.wait_for(
        "chat.postMessage", lambda c: c.time >= since and c.args.get("channel") == channel
        and "Rollback plan" in text_of(c), timeout=30)
    return channel, str(card.response["ts"])


def is_verdict_in(channel: str) -> Any:
    def is_verdict(call: Any) -> bool:
        text = str(call.args.get("text", ""))
        return call.args.get("channel") == channel and (
            "Rollback verified" in text or "Stop and escalate" in text)
    return is_verdict


def first_read_of(emulated: EmulatedWorld, name: str, since: float) -> float | None:
    """When the first Cloud Run call naming the service arrived after `since`: its
    Confirm's job at work (it reads the service before anything else)."""
    for call in emulated.google.calls:
        if call.time >= since and call.method.endswith("/GetService") and (
                str(getattr(call.request, "name", "")).endswith("/services/" + name)):
            return call.time
    return None


async def all_traffic_changed(names: list[str], within: float) -> None:
    changed = asyncio.Event()
    TrafficWatch.event = changed
    try:
        async with asyncio.timeout(within):
            while not all(TrafficWatch.times.get(name) for name in names):
                await changed.wait()
                changed.clear()
    finally:
        TrafficWatch.event = None


async def measure_scale(emulated: EmulatedWorld, events_url: str,
                        watched_services: dict[str, WatchedService],
                        lone_traffic_ms: float) -> dict[str, Any]:
    # In the world from now on: each verdict schedules analysis jobs minutes ahead,
    # which ask Google about the service.
    emulated.world.services.update(watched_services)
    runs = await confirm_together(emulated, events_url, len(watched_services))
    return summarize_scale(runs, lone_traffic_ms)


async def confirm_together(emulated: EmulatedWorld, events_url: str,
                           count: int) -> list[dict[str, Any]]:
    """A plan card for each of the services, then their Confirm clicks all at once;
    each one's times, in ms after its own click."""
    slack = emulated.slack
    services = service_names(count)
    emulated.google.faults.latency_all = GOOGLE_LATENCY
    emulated.google.operation_delay = OPERATION_DELAY
    try:
        cards = await asyncio.gather(*(post_plan_card(emulated, events_url, key, n)
                                       for n, key in enumerate(services, 1)))
        # Every proposal's job done (plan cards, baselines): the clicks meet an idle bot.
        await drain_jobs(emulated.database_url, 60)
        verdict_waits = [asyncio.ensure_future(slack.wait_for(
            "chat.postMessage", is_verdict_in(channel), timeout=90)) for channel, _ in cards]
        await asyncio.sleep(0.01)  # the waiters' first pass over the calls, done now
        for name in services.values():
            TrafficWatch.times[name] = []
        mono, wall = time.monotonic(), time.time()
        clicks = await asyncio.gather(*(
            slack.click(events_url, action_id=CONFIRM, user_id="U0BOB", channel_id=channel,
                        message_ts=ts) for channel, ts in cards))
        refused = [f"{key}: {c.status}" for key, c in zip(services, clicks, strict=True)
                   if c.status != 200]
        if refused:
            raise RuntimeError(f"Confirm not acked: {refused}")
        await all_traffic_changed(list(services.values()), 60)
        verdicts = await asyncio.gather(*verdict_waits)
    finally:
        emulated.google.faults.clear()

    runs = []
    for (key, name), click, verdict in zip(services.items(), clicks, verdicts, strict=True):
        started = first_read_of(emulated, name, click.sent_at)
        runs.append({
            "service": key, "served_after": emulated.world.serving(name),
            "click_at_ms": (click.sent_at - clicks[0].sent_at) * 1000,
            "click_ack_ms": click.elapsed * 1000,
            "job_first_read_ms": None if started is None else (started - click.sent_at) * 1000,
            "traffic_ms": (TrafficWatch.times[name][0] - click.sent_at) * 1000,
            "verdict_ms": (mono + verdict.time - wall - click.sent_at) * 1000,
            "verdict": str(verdict.args.get("text", ""))[:60],
        })
    return runs


def summarize_scale(runs: list[dict[str, Any]], lone_traffic_ms: float) -> dict[str, Any]:
    """The median against the lone rollbacks', and which jobs started only after another
    rollback's verdict (all times here are ms after the first click)."""
    def at(run: dict[str, Any], key: str) -> float:
        return float(run["click_at_ms"] + run[key])

    waited = [run["service"] for run in runs
              if run["job_first_read_ms"] is None
              or at(run, "job_first_read_ms") > min(at(other, "verdict_ms") for other in runs
                                                     if other is not run)]
    traffic = [run["traffic_ms"] for run in runs]
    median = statistics.median(traffic)
    return {
        "services": len(runs), "google_latency_ms": GOOGLE_LATENCY * 1000,
        "operation_delay_ms": OPERATION_DELAY * 1000,
        "clicks_spread_ms": max(run["click_at_ms"] for run in runs),
        "traffic_ms": median, "traffic_max_ms": max(traffic),
        "lone_traffic_ms": lone_traffic_ms, "traffic_ratio_to_lone": median / lone_traffic_ms,
        "first_verdict_ms": min(at(run, "verdict_ms") for run in runs),
        "last_traffic_ms": max(at(run, "traffic_ms") for run in runs),
        "started_after_another_verdict": waited,
        "runs": runs,
    }
