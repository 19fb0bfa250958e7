"""2. End-to-end rollback time, from the click on Confirm.

Each rollback, in its own incident channel, is timed from the Confirm click to the
traffic change and to the first check line in the thread, while the emulators add a
fixed latency to every Google call (and, in the second series, to every Slack call);
each time is compared with the critical path of the injected waits and with the
runbook's minimum. Also holds what these runs need: the bench-side Slack delay, the
watch on the service's traffic, and resetting that traffic between runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from common import ALICE, API, CONFIRM, GOOGLE_LATENCY, OPERATION_DELAY, SERVING, TARGETS

from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack.api import WebApi
from integrations.emulators.world import EmuService, EmuTrafficTarget

# --- the Slack emulator's per-call latency (bench-side) ------------------------------

class SlackDelay:
    """A fixed delay before every Slack Web API call and response_url post.

    The Slack emulator has no such option (`inject(delay=)` only delays a call it
    also fails), so the bench wraps its two handlers, in this process only, before
    the emulator starts. `seconds = 0` (the default) adds nothing.
    """

    seconds = 0.0
    intervals: list[tuple[float, float]] = []  # noqa: RUF012 - one per call, monotonic

    @classmethod
    def install(cls) -> None:
        for name in ("handle_api", "handle_response_url"):
            original = getattr(WebApi, name)

            def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
                async def delayed(self: WebApi, request: Any) -> Any:
                    if cls.seconds > 0:
                        began = time.monotonic()
                        await asyncio.sleep(cls.seconds)
                        cls.intervals.append((began, time.monotonic()))
                    return await original(self, request)
                return delayed

            setattr(WebApi, name, wrap(original))


# --- watching the traffic change ------------------------------------------------------

class TrafficWatch:
    # service name -> monotonic time of each assignment of its traffic
    times: dict[str, list[float]] = {}  # noqa: RUF012
    event: asyncio.Event | None = None  # set on every assignment


class WatchedService(EmuService):
    """EmuService that notes when its traffic is assigned (the operation finishing)."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "traffic":
            TrafficWatch.times.setdefault(self.name, []).append(time.monotonic())
            if TrafficWatch.event is not None:
                TrafficWatch.event.set()


def watched(svc: EmuService) -> WatchedService:
    return WatchedService(**{f.name: getattr(svc, f.name) for f in dataclasses.fields(svc)})


def watch_service(emulated: EmulatedWorld) -> WatchedService:
    service = watched(emulated.world.services[API])
    emulated.world.services[API] = service
    return service


def reset_traffic(emulated: EmulatedWorld) -> None:
    emulated.world.services[API].traffic = [EmuTrafficTarget(revision=SERVING, percent=100)]


# --- small helpers --------------------------------------------------------------------

def union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def text_of(call: Any) -> str:
    return str(call.args.get("text", "")) + json.dumps(call.args.get("blocks", []))


# --- 2. end to end --------------------------------------------------------------------

_INCIDENTS = itertools.count(1)


async def one_rollback(emulated: EmulatedWorld, events_url: str, target: str,
                       slack_delay: float) -> dict[str, Any]:
    slack, google = emulated.slack, emulated.google
    reset_traffic(emulated)
    # Each rollback in its own incident channel, as incidents are: the bot paces
    # posts per channel (Slack's limit), and back-to-back rollbacks in one channel
    # would measure that pacing rather than the rollback.
    n = next(_INCIDENTS)
    requester: dict[str, Any] = {**ALICE, "channel_id": f"C0BENCH{n}",
                                 "channel_name": f"inc-bench-{n}"}
    slack.add_channel(requester["channel_id"], requester["channel_name"])
    started_wall = time.time()
    ack = await slack.send_command(events_url, f"api {target}", **requester)
    if ack.status != 200:
        raise RuntimeError(f"proposal not acked: {ack.status} {ack.body}")
    card = await slack.wait_for(
        "chat.postMessage", lambda c: c.time >= started_wall and "Rollback plan" in text_of(c),
        timeout=15)
    await asyncio.sleep(0.3)  # let the propose job finish before the clock starts
    changed = asyncio.Event()
    TrafficWatch.times[API] = []
    TrafficWatch.event = changed
    first_google = len(google.calls)
    first_slack_delay = len(SlackDelay.intervals)
    channel = requester["channel_id"]

    def is_check_line(call: Any) -> bool:
        return (call.args.get("channel") == channel and bool(call.args.get("thread_ts"))
                and str(call.args.get("text", "")).startswith(("✅", "❌")))

    def is_verdict(call: Any) -> bool:
        text = str(call.args.get("text", ""))
        return call.args.get("channel") == channel and (
            "Rollback verified" in text or "Stop and escalate" in text)

    # Waiting starts before the click: a waiter's first pass over every call recorded
    # so far runs now, not on the emulators' event loop in the middle of the rollback.
    first_line_wait = asyncio.ensure_future(
        slack.wait_for("chat.postMessage", is_check_line, timeout=20))
    verdict_wait = asyncio.ensure_future(slack.wait_for("chat.postMessage", is_verdict,
                                                        timeout=30))
    await asyncio.sleep(0.01)

    called_mono, called_wall = time.monotonic(), time.time()
    try:
        result = await slack.click(events_url, action_id=CONFIRM, user_id="U0BOB",
                                   channel_id=channel, message_ts=card.response["ts"])
    except BaseException:
        first_line_wait.cancel()
        verdict_wait.cancel()
        raise
    # The clock starts as the click's request leaves the emulator: building Slack's
    # payload (the whole plan card) and signing it is the emulator's work, not rollbot's.
    click_mono = result.sent_at
    click_wall = called_wall + (click_mono - called_mono)
    ack_s = time.monotonic() - click_mono
    if result.status != 200:
        raise RuntimeError(f"Confirm not acked: {result.status} {result.body}")
    await asyncio.wait_for(changed.wait(), 15)
    TrafficWatch.event = None
    traffic_at = TrafficWatch.times[API][0]
    first_line = await first_line_wait
    first_line_at = click_mono + (first_line.time - click_wall)
    await verdict_wait
    served = emulated.world.serving(API)

    calls = [c for c in google.calls[first_google:] if c.time >= click_mono]
    delays = SlackDelay.intervals[first_slack_delay:]

    operations = [span for span in emulated.google.operation_timings().values()
                  if span[0] >= click_mono]

    def critical(until: float) -> tuple[float, float, dict[str, int]]:
        """The injected waits in [click, until], overlapping ones counted once: (as the
        emulators applied them, as asked for, calls per method).

        As applied: each Google call's wait and each operation from its start to its
        end, as the emulator timed them, and each Slack delay as the bench timed it.
        A timer overshoots the delay asked for (epoll counts whole milliseconds), so
        the waits asked for (each call 50 ms from its arrival; the operation 50 ms
        from the end of UpdateService's) sit a little below; both are reported."""
        applied: list[tuple[float, float]] = []
        asked: list[tuple[float, float]] = []
        counts: dict[str, int] = {}
        for call in calls:
            if call.time > until:
                continue
            method = call.method.rsplit("/", 1)[-1]
            counts[method] = counts.get(method, 0) + 1
            asked.append((call.time, min(call.time + GOOGLE_LATENCY, until)))
            if call.waited is not None:
                applied.append((call.waited[0], min(call.waited[1], until)))
            if method == "UpdateService":
                done = call.time + GOOGLE_LATENCY
                asked.append((done, min(done + OPERATION_DELAY, until)))
        for started, finished in operations:
            if started <= until:
                applied.append((started, min(finished or until, until)))
        for began, ended in delays:
            if click_mono <= began <= until:
                applied.append((began, min(ended, until)))
                asked.append((began, min(began + slack_delay, until)))
                counts["slack"] = counts.get("slack", 0) + 1
        return union_length(applied), union_length(asked), counts

    to_traffic, traffic_asked, traffic_calls = critical(traffic_at)
    to_line, line_asked, line_calls = critical(first_line_at)
    # What the runbook needs in sequence: read the service, update it, the operation,
    # and before it the announcement; for the first check line also the rest of
    # WaitOperation, the read-back and the line itself.
    minimum_traffic = 2 * GOOGLE_LATENCY + OPERATION_DELAY + slack_delay
    minimum_line = (minimum_traffic + max(0.0, GOOGLE_LATENCY - OPERATION_DELAY)
                    + GOOGLE_LATENCY + slack_delay)
    slack_before_traffic = [
        c.method for c in slack.calls
        if click_wall <= c.time <= click_wall + (traffic_at - click_mono)]
    timeline = [(round((c.time - click_mono) * 1000, 1), "google " + c.method.rsplit("/", 1)[-1])
                for c in calls if c.time <= first_line_at + 0.001]
    timeline += [(round((c.time - click_wall) * 1000, 1),
                  f"slack {c.method} answered: {str(c.args.get('text', ''))[:40]!r}")
                 for c in slack.calls if click_wall <= c.time <= click_wall + (
                     first_line_at - click_mono) + 0.001]
    timeline += [(round(ack_s * 1000, 1), "Confirm acked"),
                 (round((traffic_at - click_mono) * 1000, 1), "traffic changed")]
    return {
        "target": target, "served_after": served, "click_ack_ms": ack_s * 1000,
        "timeline": sorted(timeline),
        "traffic_ms": (traffic_at - click_mono) * 1000,
        "traffic_critical_ms": to_traffic * 1000,
        "traffic_critical_asked_ms": traffic_asked * 1000,
        "traffic_minimum_ms": minimum_traffic * 1000,
        "traffic_calls": traffic_calls,
        "first_check_ms": (first_line_at - click_mono) * 1000,
        "first_check_critical_ms": to_line * 1000,
        "first_check_critical_asked_ms": line_asked * 1000,
        "first_check_minimum_ms": minimum_line * 1000,
        "first_check_calls": line_calls,
        # The emulator's own work on each call up to the first check line (building its
        # answer after the injected wait): time counted as rollbot's, though it is not.
        # Not WaitOperation's: its answer waits for the operation, an injected wait.
        "emulator_work_ms": sum(
            (c.answered - (c.waited[1] if c.waited else c.time)) * 1000 for c in calls
            if c.answered is not None and c.time <= first_line_at
            and not c.method.endswith("/WaitOperation")),
        "slack_calls_before_traffic": slack_before_traffic,
    }


async def measure_e2e(emulated: EmulatedWorld, events_url: str, runs: int,
                      slack_delay: float) -> dict[str, Any]:
    emulated.google.faults.latency_all = GOOGLE_LATENCY
    emulated.google.operation_delay = OPERATION_DELAY
    SlackDelay.seconds = slack_delay
    samples = []
    try:
        for i in range(runs):
            sample = await one_rollback(emulated, events_url, TARGETS[i % len(TARGETS)],
                                        slack_delay)
            samples.append(sample)
            print(f"  e2e (Slack +{slack_delay * 1000:.0f} ms) #{i + 1}: traffic "
                  f"{sample['traffic_ms']:6.1f} ms (critical path "
                  f"{sample['traffic_critical_ms']:5.1f}), first check line "
                  f"{sample['first_check_ms']:6.1f} ms (critical path "
                  f"{sample['first_check_critical_ms']:5.1f})", flush=True)
    finally:
        emulated.google.faults.clear()
        SlackDelay.seconds = 0.0
        reset_traffic(emulated)

    def med(key: str) -> float:
        return statistics.median(s[key] for s in samples)

    def ratio_med(num: str, den: str) -> float:
        return statistics.median(s[num] / s[den] for s in samples)

    return {
        "google_latency_ms": GOOGLE_LATENCY * 1000, "operation_delay_ms": OPERATION_DELAY * 1000,
        "slack_latency_ms": slack_delay * 1000, "runs": samples,
        "traffic_ms": med("traffic_ms"), "traffic_critical_ms": med("traffic_critical_ms"),
        "traffic_ratio": ratio_med("traffic_ms", "traffic_critical_ms"),
        "traffic_ratio_to_asked": ratio_med("traffic_ms", "traffic_critical_asked_ms"),
        "traffic_minimum_ms": med("traffic_minimum_ms"),
        "traffic_minimum_ratio": ratio_med("traffic_ms", "traffic_minimum_ms"),
        "first_check_ms": med("first_check_ms"),
        "first_check_critical_ms": med("first_check_critical_ms"),
        "first_check_ratio": ratio_med("first_check_ms", "first_check_critical_ms"),
        "first_check_ratio_to_asked": ratio_med("first_check_ms",
                                                "first_check_critical_asked_ms"),
        "first_check_minimum_ms": med("first_check_minimum_ms"),
        "first_check_minimum_ratio": ratio_med("first_check_ms", "first_check_minimum_ms"),
    }
