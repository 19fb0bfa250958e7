"""rollbot's benchmark: ack latency, end-to-end rollback time, idle memory, start-up.

    .venv/bin/python bench/run.py [--quick]

One command, not part of the test run; everything on 127.0.0.1, stops by itself.
See bench/README.md for what is measured, how, and the targets. Prints a table and
writes bench/results/latest.json (bench/results/ is gitignored).

Processes: this one runs the emulators (Slack, Google Cloud gRPC, target app) and the
embedded Postgres/Redis; the server under test (`python -m bot serve`, or a bare Bolt
app from bench/bare_bolt.py) is a subprocess; the load generator (bench/loadgen.py)
is another subprocess, so its CPU never runs on the server's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import os
import platform
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import psycopg

from bot.stores.migrations import migrate
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack.api import WebApi
from integrations.emulators.slack.delivery import command_form
from integrations.emulators.world import EmuService, EmuTrafficTarget, default_world

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"

API = "medicalcor-api"
SERVING = "medicalcor-api-00015-abc"  # what serves in the default (broken) world
TARGETS = ("00014-def", "00013-ghi")  # e2e rollbacks alternate between these
ALICE = {"user_id": "U0ALICE", "channel_id": "C0INCIDENT", "channel_name": "inc-api-outage"}
ACK_TEXTS = ("api", "api 00014-def")  # a revision list and a real proposal: both job hand-offs
CONFIRM = "rollback.confirm"

GOOGLE_LATENCY = 0.05  # GoogleEmulator.faults.latency_all during the end-to-end runs
OPERATION_DELAY = 0.05  # seconds until an UpdateService operation is done
SLACK_LATENCY = 0.05  # the bench-side Slack delay of the second end-to-end series

TARGET_ACK_P50_1 = 2.0  # × floor
TARGET_ACK_P99_50 = 1.5  # × floor
TARGET_ACK_MAX_200 = 1.0  # seconds
TARGET_E2E_RATIO = 1.1
TARGET_RSS_MB = 150.0
TARGET_START_S = 2.0


@dataclasses.dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    requests: int  # measured requests per level
    burst: int  # concurrency of the burst phase
    burst_requests: int
    paced_requests: int  # the diagnostic phase: 1 concurrent, PACE s between requests
    rounds: int  # each level in this many rounds, interleaved across the servers
    e2e_runs: int

    def warmup(self, concurrency: int) -> int:
        return max(20, concurrency)


FULL = Plan(levels=(1, 10, 50), requests=300, burst=200, burst_requests=600,
            paced_requests=100, rounds=3, e2e_runs=5)
QUICK = Plan(levels=(1, 10, 50), requests=60, burst=200, burst_requests=200,
             paced_requests=30, rounds=1, e2e_runs=2)
PACE = 0.03  # seconds between requests of the paced phase: rollbot's jobs keep up


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
    times: list[float] = []  # noqa: RUF012 - monotonic time of each assignment
    event: asyncio.Event | None = None


class WatchedService(EmuService):
    """EmuService that notes when its traffic is assigned (the operation finishing)."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "traffic":
            TrafficWatch.times.append(time.monotonic())
            if TrafficWatch.event is not None:
                TrafficWatch.event.set()


def watch_service(emulated: EmulatedWorld) -> WatchedService:
    svc = emulated.world.services[API]
    watched = WatchedService(**{f.name: getattr(svc, f.name) for f in dataclasses.fields(svc)})
    emulated.world.services[API] = watched
    return watched


def reset_traffic(emulated: EmulatedWorld) -> None:
    emulated.world.services[API].traffic = [EmuTrafficTarget(revision=SERVING, percent=100)]


# --- small helpers --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def read_status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


STAND_IN_NICENESS = 5
WORKERS_PAUSED = "c1_workers_paused"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (rollbot serve's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its children have used so far
    (/proc/<pid>/stat): the listener and its job workers together."""
    total = 0.0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is None:
            if member == pid:
                return math.nan
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def memory_mb(pid: int) -> dict[str, Any]:
    """RSS of each process of the tree, and the sum of their PSS: pages the forked
    workers share with the listener counted once (RSS would count them in each)."""
    each, pss_kb = {}, 0
    for member in process_tree(pid):
        rss = read_status_kb(member, "VmRSS")
        if rss is None:
            continue
        each[str(member)] = rss / 1024
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text(encoding="utf-8")
        except OSError:
            continue
        pss_kb += next(int(line.split()[1]) for line in rollup.splitlines()
                       if line.startswith("Pss:"))
    return {"processes": len(each), "rss_mb_each": each, "pss_total_mb": pss_kb / 1024}


def loadavg() -> str:
    """The machine's load: other processes on the same cores skew every number."""
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def open_log(name: str) -> TextIO:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return (RESULTS / name).open("w", encoding="utf-8")


def remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


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


# Run as `python -I -S -c WATCHDOG <pid>` with a pipe from us on stdin. A byte means
# "stand down"; bare EOF means this process died: stop the server (TERM, then KILL),
# so no server outlives a killed benchmark.
WATCHDOG = r"""
import os, signal, sys, time
pid = int(sys.argv[1])
try:
    if os.read(0, 1): sys.exit(0)
except OSError: pass
try: os.kill(pid, signal.SIGTERM)
except OSError: sys.exit(0)
end = time.monotonic() + 10
while time.monotonic() < end:
    try: os.kill(pid, 0)
    except OSError: sys.exit(0)
    time.sleep(0.1)
try: os.kill(pid, signal.SIGKILL)
except OSError: pass
"""


class Server:
    """A subprocess serving HTTP on 127.0.0.1 (rollbot or a bare Bolt app)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], url: str) -> None:
        self.name, self.argv, self.env, self.url = name, argv, env, url
        self.proc: asyncio.subprocess.Process | None = None
        self.watchdog: asyncio.subprocess.Process | None = None
        self.spawned = 0.0
        self._log: TextIO | None = None

    async def start(self) -> None:
        self._log = open_log(f"{self.name}.log")
        self.spawned = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log, stderr=asyncio.subprocess.STDOUT)
        self.watchdog = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", WATCHDOG, str(self.proc.pid),
            stdin=asyncio.subprocess.PIPE)

    async def wait_ok(self, path: str, within: float = 30.0) -> float:
        """Seconds from spawn until GET path answers 200 (polled every 10 ms)."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while loop.time() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                       f"see {RESULTS / (self.name + '.log')}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + path) as resp:
                        if resp.status == 200:
                            return time.perf_counter() - self.spawned
                await asyncio.sleep(0.01)
        raise RuntimeError(f"{self.name}: {path} not 200 within {within:g}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.write(b"x")
                await watchdog.stdin.drain()
                watchdog.stdin.close()
            try:
                await asyncio.wait_for(watchdog.wait(), 5)
            except TimeoutError:
                watchdog.kill()
                await watchdog.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


# --- 1. ack latency -------------------------------------------------------------------

def command_bodies(emulated: EmulatedWorld, n: int) -> tuple[list[str], list[str], list[str]]:
    """n signed-later slash command bodies, alternating the ACK_TEXTS, each with its own
    response_url (so the jobs they start can answer) and trigger_id; and the ids of
    those response_urls in the Slack emulator."""
    slack = emulated.slack
    bodies, tags, targets = [], [], []
    for i in range(n):
        text = ACK_TEXTS[i % len(ACK_TEXTS)]
        response_url = slack.new_response_url(channel_id=ALICE["channel_id"],
                                              user_id=ALICE["user_id"])
        body = command_form(
            token="emulator-verification-token", team_id=slack.team_id,
            team_domain=slack.team_domain, channel_id=ALICE["channel_id"],
            channel_name=ALICE["channel_name"], user_id=ALICE["user_id"], user_name="alice",
            command="/rollback", text=text, api_app_id=slack.app_id, response_url=response_url)
        bodies.append(body.decode())
        tags.append(text)
        targets.append(response_url.rsplit("/", 1)[1])
    return bodies, tags, targets


def ack_levels(plan: Plan) -> list[tuple[str, int, int, float]]:
    """(name, concurrency, measured requests, pause between requests) per level."""
    return [*((f"c{c}", c, plan.requests, 0.0) for c in plan.levels),
            (f"c{plan.burst}", plan.burst, plan.burst_requests, 0.0),
            ("c1_paced", 1, plan.paced_requests, PACE),
            (WORKERS_PAUSED, 1, plan.requests, 0.0)]


def ack_phases(emulated: EmulatedWorld, plan: Plan) -> list[dict[str, Any]]:
    """Every level split into `plan.rounds` phases (warm-up in the first only)."""
    phases = []
    for name, level, n, pause in ack_levels(plan):
        for r in range(plan.rounds):
            warm = plan.warmup(level) if r == 0 else 0
            # At least `level` requests per round, or 200 concurrent would never be.
            count = max(level, n // plan.rounds + (1 if r < n % plan.rounds else 0))
            bodies, tags, targets = command_bodies(emulated, warm + count)
            phases.append({"name": f"{name}#{r + 1}", "level": name, "concurrency": level,
                           "warmup": warm, "pause": pause, "bodies": bodies, "tags": tags,
                           "targets": targets})
    return phases


async def pending_jobs(database_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
            "AND queue_name <> 'maintenance' "
            # analysis jobs scheduled minutes ahead are not work the acks promised
            "AND (scheduled_at IS NULL OR scheduled_at <= now())")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def drain_jobs(database_url: str, within: float,
                     unanswered: Callable[[], int] = lambda: 0) -> float | None:
    """Wait until rollbot has done the work its acks promised: no job to do or doing,
    and every command answered at its response_url (one may be the proposal that
    posted a plan card instead). Hand-offs still waiting to be deferred are not in
    the job table yet, hence the second condition. Seconds waited, None on timeout."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while loop.time() - began < within:
        if unanswered() <= 1 and await pending_jobs(database_url) == 0:
            return loop.time() - began
        await asyncio.sleep(0.1)
    return None


class LoadGen:
    """One load generator subprocess driving one server through its phases. Before
    each measured phase (after its warm-up) the server's after-ack work (rollbot's
    jobs) is left to finish, so every measured phase starts idle, connections open."""

    def __init__(self, server: Server, emulated: EmulatedWorld, phases: list[dict[str, Any]],
                 database_url: str | None) -> None:
        self.server, self.phases, self.database_url = server, phases, database_url
        self.store = emulated.slack.store
        self.spec = {"url": server.url + "/slack/events", "secret": emulated.signing_secret,
                     "phases": [{k: v for k, v in ph.items() if k != "targets"}
                                for ph in phases]}
        self.proc: asyncio.subprocess.Process | None = None
        self.spec_path = ""

    async def start(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", prefix="loadgen-", suffix=".json", dir=RESULTS,
                                         delete=False) as f:
            json.dump(self.spec, f)
            self.spec_path = f.name
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH / "loadgen.py"), self.spec_path, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024)

    async def _step(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("load generator exited early")
        return dict(json.loads(line))

    def _unanswered(self, targets: list[str]) -> Callable[[], int]:
        return lambda: sum(1 for t in targets if self.store.response_targets[t].uses == 0)

    async def run(self, index: int) -> dict[str, Any]:
        phase = self.phases[index]
        warm = phase["warmup"]
        await self._step()  # the warm-up (possibly empty)
        if self.database_url:
            await drain_jobs(self.database_url, 90, self._unanswered(phase["targets"][:warm]))
        cpu_before = cpu_seconds(self.server.pid)
        # Diagnostic: the listener alone, its worker processes stopped (their jobs
        # wait in Postgres and run once they are continued).
        paused = process_tree(self.server.pid)[1:] if phase["level"] == WORKERS_PAUSED else []
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            raw = await self._step()
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
        raw["cpu_in_phase"] = cpu_seconds(self.server.pid) - cpu_before
        if self.database_url:
            measured = self._unanswered(phase["targets"][warm:])
            raw["drained_after_s"] = await drain_jobs(self.database_url, 90, measured)
            raw["unanswered"] = measured()
        # The server's CPU including the after-ack work that finished after the phase
        # (rollbot's jobs; nothing for a bare app).
        raw["cpu_total"] = cpu_seconds(self.server.pid) - cpu_before
        return raw

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self.spec_path:
            remove(self.spec_path)


def summarize(raws: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """One level's rounds pooled."""
    lat = [x for r in raws for x in r["latencies"]]
    statuses = [x for r in raws for x in r["statuses"]]
    tags = [x for r in raws for x in r["tags"]]
    wall = sum(r["wall"] for r in raws)
    result: dict[str, Any] = {
        "concurrency": concurrency, "requests": len(lat), "rounds": len(raws),
        "non_200": sum(1 for x in statuses if x != 200),
        "p50_ms": pct(lat, 50) * 1000, "p90_ms": pct(lat, 90) * 1000,
        "p99_ms": pct(lat, 99) * 1000, "max_ms": max(lat) * 1000,
        "over_1s": sum(1 for x in lat if x > 1.0),
        "round_p50_ms": [pct(r["latencies"], 50) * 1000 for r in raws],
        "round_p99_ms": [pct(r["latencies"], 99) * 1000 for r in raws],
        "throughput_rps": len(lat) / wall if wall else None,
        # Server CPU per request: during the phase, and with the after-ack work.
        "cpu_ms_per_request_in_phase": sum(r["cpu_in_phase"] for r in raws) * 1000 / len(lat),
        "cpu_ms_per_request": sum(r["cpu_total"] for r in raws) * 1000 / len(lat),
        "server_cpu_busy_in_phase": sum(r["cpu_in_phase"] for r in raws) / wall if wall else None,
        "by_text": {text: {"p50_ms": pct(sub, 50) * 1000, "p99_ms": pct(sub, 99) * 1000}
                    for text in ACK_TEXTS
                    if (sub := [x for x, t in zip(lat, tags, strict=True) if t == text])},
    }
    if "drained_after_s" in raws[0]:
        drained = [r["drained_after_s"] for r in raws]
        result["jobs_drained_after_s"] = None if None in drained else max(drained)
        result["unanswered_commands"] = sum(r["unanswered"] for r in raws)
    return result


def stand_ins_yield_cpu(emulated: EmulatedWorld) -> None:
    """Slack, Google and Postgres run on other machines in production; here their
    stand-ins (the emulators in this process, the embedded stores) share the
    servers' two vCPUs. During the ack phases they run in Linux's idle scheduling
    class (SCHED_IDLE; niceness as a fallback), so the kernel gives the servers
    under test and the load generators the CPU they want, and the stand-ins every
    cycle left over. Per thread on Linux: every thread of this process (the load
    generators, spawned before, keep normal priority), and the stores' process trees."""
    pids = [int(task.name) for task in Path("/proc/self/task").iterdir()]
    for store in emulated._stores:  # the bench owns this world
        if store.pid is not None:
            pids += process_tree(store.pid)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, STAND_IN_NICENESS)
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


async def measure_acks(emulated: EmulatedWorld, plan: Plan,
                       servers: dict[str, Server]) -> dict[str, Any]:
    """The same phases against every server, interleaved: each round of a level runs
    on rollbot, then default Bolt, then floor Bolt, so slow moments of the machine
    (other processes) fall on all of them alike."""
    gens = {name: LoadGen(server, emulated, ack_phases(emulated, plan),
                          emulated.database_url if name == "rollbot" else None)
            for name, server in servers.items()}
    out: dict[str, dict[str, Any]] = {name: {} for name in servers}
    try:
        for gen in gens.values():
            await gen.start()
        stand_ins_yield_cpu(emulated)  # after the load generators are spawned at priority 0
        phases = next(iter(gens.values())).phases
        raws: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in servers}
        for index, phase in enumerate(phases):
            for name, gen in gens.items():
                raws[name].setdefault(phase["level"], []).append(await gen.run(index))
        for level, concurrency, _n, _pause in ack_levels(plan):
            for name in servers:
                result = summarize(raws[name][level], concurrency)
                out[name][level] = result
                drained = result.get("jobs_drained_after_s")
                print(f"  {name:>13} {level:<8} p50 {result['p50_ms']:7.2f} ms  "
                      f"p99 {result['p99_ms']:7.2f} ms  max {result['max_ms']:7.1f} ms  "
                      f"non-200 {result['non_200']}  CPU/request "
                      f"{result['cpu_ms_per_request']:5.2f} ms"
                      + (f"  (answers done {drained:.1f}s after)" if drained is not None
                         else ""), flush=True)
    finally:
        for gen in gens.values():
            await gen.close()
    return out


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
    requester = {**ALICE, "channel_id": f"C0BENCH{n}", "channel_name": f"inc-bench-{n}"}
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
    TrafficWatch.times.clear()
    TrafficWatch.event = changed
    first_google = len(google.calls)
    first_slack_delay = len(SlackDelay.intervals)

    click_mono, click_wall = time.monotonic(), time.time()
    result = await slack.click(events_url, action_id=CONFIRM, user_id="U0BOB",
                               channel_id=requester["channel_id"],
                               message_ts=card.response["ts"])
    ack_s = time.monotonic() - click_mono
    if result.status != 200:
        raise RuntimeError(f"Confirm not acked: {result.status} {result.body}")
    await asyncio.wait_for(changed.wait(), 15)
    TrafficWatch.event = None
    traffic_at = TrafficWatch.times[0]

    def is_check_line(call: Any) -> bool:
        return (call.time >= click_wall and bool(call.args.get("thread_ts"))
                and str(call.args.get("text", "")).startswith(("✅", "❌")))

    first_line = await slack.wait_for("chat.postMessage", is_check_line, timeout=15)
    first_line_at = click_mono + (first_line.time - click_wall)
    await slack.wait_for(
        "chat.postMessage", lambda c: c.time >= click_wall and (
            "Rollback verified" in text_of(c) or "Stop and escalate" in text_of(c)),
        timeout=20)
    served = emulated.world.serving(API)

    calls = [c for c in google.calls[first_google:] if c.time >= click_mono]
    delays = SlackDelay.intervals[first_slack_delay:]

    def critical(until: float) -> tuple[float, dict[str, int], float]:
        """Injected waits in [click, until], overlapping ones counted once: each Google
        call's latency, the operation's delay after UpdateService, each Slack delay."""
        spans: list[tuple[float, float]] = []
        counts: dict[str, int] = {}
        nominal = 0.0
        for call in calls:
            if call.time > until:
                continue
            method = call.method.rsplit("/", 1)[-1]
            counts[method] = counts.get(method, 0) + 1
            spans.append((call.time, min(call.time + GOOGLE_LATENCY, until)))
            nominal += GOOGLE_LATENCY
            if method == "UpdateService":
                done = call.time + GOOGLE_LATENCY
                spans.append((done, min(done + OPERATION_DELAY, until)))
                nominal += OPERATION_DELAY
        for began, ended in delays:
            if click_mono <= began <= until:
                spans.append((began, min(ended, until)))
                counts["slack"] = counts.get("slack", 0) + 1
                nominal += slack_delay
        return union_length(spans), counts, nominal

    to_traffic, traffic_calls, traffic_nominal = critical(traffic_at)
    to_line, line_calls, line_nominal = critical(first_line_at)
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
        "traffic_nominal_ms": traffic_nominal * 1000,
        "traffic_minimum_ms": minimum_traffic * 1000,
        "traffic_calls": traffic_calls,
        "first_check_ms": (first_line_at - click_mono) * 1000,
        "first_check_critical_ms": to_line * 1000,
        "first_check_nominal_ms": line_nominal * 1000,
        "first_check_minimum_ms": minimum_line * 1000,
        "first_check_calls": line_calls,
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
        "traffic_minimum_ms": med("traffic_minimum_ms"),
        "traffic_minimum_ratio": ratio_med("traffic_ms", "traffic_minimum_ms"),
        "first_check_ms": med("first_check_ms"),
        "first_check_critical_ms": med("first_check_critical_ms"),
        "first_check_ratio": ratio_med("first_check_ms", "first_check_critical_ms"),
        "first_check_minimum_ms": med("first_check_minimum_ms"),
        "first_check_minimum_ratio": ratio_med("first_check_ms", "first_check_minimum_ms"),
    }


# --- the run --------------------------------------------------------------------------

def bot_server(emulated: EmulatedWorld, name: str) -> Server:
    port = free_port()
    env = {**os.environ, **emulated.env(), "PORT": str(port)}
    # ROLLBOT_BENCH_PROFILE=FILE runs the server under cProfile (a diagnosis, not a result).
    profile = os.environ.get("ROLLBOT_BENCH_PROFILE")
    python = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    return Server(name, [*python, "-m", "bot", "serve", "--host", "127.0.0.1"], env,
                  f"http://127.0.0.1:{port}")


def bare_server(emulated: EmulatedWorld, mode: str) -> Server:
    port = free_port()
    env = {**os.environ, **emulated.env()}
    return Server(f"bolt-{mode}", [sys.executable, str(BENCH / "bare_bolt.py"), "--mode", mode,
                                   "--port", str(port)], env, f"http://127.0.0.1:{port}")


async def run(plan: Plan, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick,
        "plan": dataclasses.asdict(plan),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "versions": {p: metadata.version(p) for p in (
                        "slack_bolt", "slack_sdk", "aiohttp", "procrastinate", "psycopg",
                        "grpcio")}},
        "loadavg_before": loadavg(),
        "stand_ins_during_acks": f"SCHED_IDLE (else nice {STAND_IN_NICENESS})",
    }
    SlackDelay.install()
    print("starting emulators and embedded Postgres/Redis …", flush=True)
    emulated = await EmulatedWorld.start(
        world=default_world(bad_latest=True), with_stores=True,
        operation_delay=OPERATION_DELAY, verification_window=1.5, verification_interval=0.2)
    servers: list[Server] = []
    try:
        watch_service(emulated)

        # 3. start-up and idle memory (the bot is a subprocess; everything else is here)
        print("rollbot start-up and idle memory …", flush=True)
        fresh = bot_server(emulated, "rollbot-first-start")
        servers.append(fresh)
        await fresh.start()
        first_start = await fresh.wait_ok("/healthz")
        await fresh.stop()
        await migrate(emulated.database_url)  # already current; a restart is measured next
        bot = bot_server(emulated, "rollbot")
        servers.append(bot)
        await bot.start()
        start_s = await bot.wait_ok("/healthz")
        ready_s = await bot.wait_ok("/readyz")
        await asyncio.sleep(2.0)
        rss_kb = read_status_kb(bot.pid, "VmRSS")
        idle = memory_mb(bot.pid)
        results["startup"] = {"first_start_empty_db_s": first_start, "start_s": start_s,
                              "ready_s": ready_s}
        results["memory"] = {"idle_rss_mb": (rss_kb or 0) / 1024,
                             "idle_pss_total_mb": idle["pss_total_mb"], "idle": idle}
        print(f"  first start (empty database) {first_start:.2f}s, restart {start_s:.2f}s "
              f"(ready {ready_s:.2f}s), idle: {idle['processes']} processes, "
              f"{idle['pss_total_mb']:.1f} MB PSS in all, RSS each "
              f"{[round(v, 1) for v in idle['rss_mb_each'].values()]}", flush=True)

        # 2. end to end, with the emulators adding latency
        events_url = bot.url + "/slack/events"
        print("end-to-end rollbacks …", flush=True)
        results["e2e"] = await measure_e2e(emulated, events_url, plan.e2e_runs, 0.0)
        results["e2e_slack_latency"] = await measure_e2e(
            emulated, events_url, plan.e2e_runs, SLACK_LATENCY)

        # 1. ack latency: rollbot and the two bare Bolt apps, interleaved
        print("ack latency …", flush=True)
        under_test = {"rollbot": bot}
        for mode in ("default", "floor"):
            bare = bare_server(emulated, mode)
            servers.append(bare)
            await bare.start()
            await bare.wait_ok("/healthz")
            under_test[f"bolt_{mode}"] = bare
        results["ack"] = await measure_acks(emulated, plan, under_test)
        results["memory"]["rss_after_load_mb"] = (read_status_kb(bot.pid, "VmRSS") or 0) / 1024
        results["memory"]["peak_rss_mb"] = (read_status_kb(bot.pid, "VmHWM") or 0) / 1024
        results["memory"]["after_load"] = memory_mb(bot.pid)
    finally:
        for server in servers:
            await server.stop()
        # Not part of a metric, but a benchmark of wrong answers is worthless: what
        # the Slack emulator refused during the run (e.g. invalid blocks).
        refused: dict[str, int] = {}
        for call in emulated.slack.calls:
            if not call.ok:
                key = f"{call.method}: HTTP {call.http_status} {call.response.get('error')}"
                refused[key] = refused.get(key, 0) + 1
        results["slack_refused_calls"] = refused
        await emulated.stop()
    results["loadavg_after"] = loadavg()
    return results


# --- the report -----------------------------------------------------------------------

def verdicts(r: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    ack = r["ack"]
    bot, dflt, floor = ack["rollbot"], ack["bolt_default"], ack["bolt_floor"]
    lo, mid, hi = plan.levels[0], plan.levels[-1], plan.burst
    rows: list[dict[str, Any]] = []

    def add(metric: str, unit: str, value: Any, target: str = "", ok: bool | None = None,
            default: Any = None, floor_value: Any = None) -> None:
        rows.append({"metric": metric, "unit": unit, "rollbot": value, "default_bolt": default,
                     "floor_bolt": floor_value, "target": target, "pass": ok})

    def ack_row(metric: str, key: str, phase: str, limit: float | None = None,
                target: str = "") -> None:
        values = [d[phase][key] for d in (bot, dflt, floor)]
        add(metric, "ms" if key.endswith("_ms") else "", values[0], target,
            None if limit is None else values[0] <= limit, values[1], values[2])

    floor_p50 = floor[f"c{lo}"]["p50_ms"]
    floor_p99 = floor[f"c{mid}"]["p99_ms"]
    ack_row(f"ack p50 @{lo}", "p50_ms", f"c{lo}", TARGET_ACK_P50_1 * floor_p50,
            f"≤ {TARGET_ACK_P50_1:g}× floor = {TARGET_ACK_P50_1 * floor_p50:.2f}")
    ack_row(f"ack p99 @{lo}", "p99_ms", f"c{lo}")
    ack_row(f"  ack p50 @1 paced {PACE * 1000:.0f} ms apart (diagnostic)", "p50_ms", "c1_paced")
    ack_row("  ack p50 @1, rollbot's workers stopped (diagnostic: the listener alone)",
            "p50_ms", WORKERS_PAUSED)
    for level in plan.levels[1:]:
        ack_row(f"ack p50 @{level}", "p50_ms", f"c{level}")
        if level == mid:
            ack_row(f"ack p99 @{mid}", "p99_ms", f"c{mid}", TARGET_ACK_P99_50 * floor_p99,
                    f"≤ {TARGET_ACK_P99_50:g}× floor = {TARGET_ACK_P99_50 * floor_p99:.2f}")
        else:
            ack_row(f"ack p99 @{level}", "p99_ms", f"c{level}")
    ack_row(f"ack p50 @{hi}", "p50_ms", f"c{hi}")
    ack_row(f"ack p99 @{hi}", "p99_ms", f"c{hi}")
    ack_row(f"ack max @{hi}", "max_ms", f"c{hi}", TARGET_ACK_MAX_200 * 1000,
            f"≤ {TARGET_ACK_MAX_200 * 1000:.0f}")
    ack_row(f"non-200 acks @{hi}", "non_200", f"c{hi}", 0, "0")
    ack_row(f"  server CPU per command @{mid}, incl. after-ack work", "cpu_ms_per_request",
            f"c{mid}")
    rows[-1]["unit"] = "ms"
    ack_row(f"  server CPU busy during @{mid} (1 = one core)", "server_cpu_busy_in_phase",
            f"c{mid}")
    drained = bot[f"c{hi}"].get("jobs_drained_after_s")
    add(f"  rollbot's answers all posted, s after the @{hi} burst", "s", drained,
        "" if drained is not None else "queue not drained in 90 s")

    for key, label in (("e2e", "Google +50 ms"), ("e2e_slack_latency", "Google & Slack +50 ms")):
        e2e = r[key]
        for what, name in (("traffic", "Confirm→traffic change"),
                           ("first_check", "Confirm→1st check line")):
            add(f"{name}, median ({label})", "ms", e2e[f"{what}_ms"],
                f"critical path {e2e[f'{what}_critical_ms']:.0f} ms, "
                f"runbook minimum {e2e[f'{what}_minimum_ms']:.0f} ms")
            ratio = e2e[f"{what}_ratio"]
            add("  ratio to the critical path", "×", ratio, f"≤ {TARGET_E2E_RATIO:g}",
                ratio <= TARGET_E2E_RATIO)
            if e2e["slack_latency_ms"]:
                minimum = e2e[f"{what}_minimum_ratio"]
                add("  ratio to the runbook minimum", "×", minimum, f"≤ {TARGET_E2E_RATIO:g}",
                    minimum <= TARGET_E2E_RATIO)
    memory = r["memory"]
    total = memory["idle_pss_total_mb"]
    add(f"idle memory, all {memory['idle']['processes']} processes (PSS)", "MB", total,
        f"< {TARGET_RSS_MB:g}", 0 < total < TARGET_RSS_MB)
    add("  RSS of the listener (the workers share its pages)", "MB", memory["idle_rss_mb"])
    start = r["startup"]["start_s"]
    add("start-up, spawn→/healthz 200", "s", start, f"< {TARGET_START_S:g}",
        start < TARGET_START_S)
    add("  first start on an empty database", "s", r["startup"]["first_start_empty_db_s"])
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["metric", "rollbot", "default Bolt", "floor Bolt", "target", "pass/fail"]
    body = [[f"{r['metric']}" + (f" ({r['unit']})" if r["unit"] else ""), fmt(r["rollbot"]),
             fmt(r["default_bolt"]), fmt(r["floor_bolt"]), r["target"],
             "" if r["pass"] is None else ("pass" if r["pass"] else "FAIL")] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in body]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rollbot benchmark (see bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="fewer requests and rollbacks")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    # gRPC logs a line on every fork of a process that uses it (each subprocess spawn).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    began = time.perf_counter()
    results = asyncio.run(asyncio.wait_for(run(plan, args.quick), timeout=600))
    rows = verdicts(results, plan)
    results["table"] = rows
    results["elapsed_s"] = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print()
    print(table(rows))
    failed, parent = [], ""
    for r in rows:
        if not r["metric"].startswith(" "):
            parent = r["metric"]
        if r["pass"] is False:
            failed.append(r["metric"] if r["metric"] == parent
                          else f"{parent}: {r['metric'].strip()}")
    unanswered = sum(ph.get("unanswered_commands", 0) or 0
                     for ph in results["ack"]["rollbot"].values())
    if results["slack_refused_calls"] or unanswered > 1:
        print(f"\nWARNING: rollbot's answers were not all right: Slack emulator refused "
              f"{results['slack_refused_calls'] or 'nothing'}; commands left unanswered: "
              f"{unanswered} (see bench/results/rollbot.log)")
    print(f"\n{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else "")
          + f". Took {results['elapsed_s']:.0f}s. JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
