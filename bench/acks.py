"""1. Ack latency of signed slash commands, measured client side.

Bodies of the ACK_TEXTS (the issue's `/rollback api 00014-def`: a job hand-off) are sent
by a load generator subprocess (bench/loadgen.py), one per server under test, at each
concurrency level, a burst, a paced diagnostic phase and one with rollbot's workers
stopped; the levels run in rounds interleaved across rollbot and the two bare Bolt
apps, and rollbot's jobs are left to finish between phases. Each level's rounds are
pooled into percentiles, throughput and the server's CPU per request; the p99 is also
taken per round, and the median round's is the tail's verdict (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from common import ACK_TEXTS, ALICE, BENCH, PACE, RESULTS, ROOT, Plan
from procs import Server, cpu_seconds, process_tree, remove, wait_or_kill

from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack.delivery import command_form

STAND_IN_NICENESS = 5
STAND_IN_GROUP_NICENESS = 19  # the autogroup of each store process (see stand_ins_yield_cpu)
WORKERS_PAUSED = "c1_workers_paused"


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


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
            await wait_or_kill(proc, 10)
        if self.spec_path:
            remove(self.spec_path)


def summarize(raws: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """One level's rounds pooled."""
    lat = [x for r in raws for x in r["latencies"]]
    round_p99 = [pct(r["latencies"], 99) * 1000 for r in raws]
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
        "round_p99_ms": round_p99,
        # The tail as a repeated measurement: each round's p99, the median round's.
        # One round the machine spoiled (a spike on a 2-vCPU VM) sets the pooled p99
        # of every round together; it moves this by one rank at most.
        "median_round_p99_ms": statistics.median(round_p99),
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
    generators, spawned before, keep normal priority), and the stores' process trees.

    Policies and niceness only rank tasks within one autogroup (see `autogroups`), and
    the stores run in sessions of their own, every Postgres backend too: each such
    group of the stores' is put at niceness 19, never this process's own group (which
    the servers under test share). Called before every phase: the stores start
    backends (and so groups) as clients connect."""
    pids = [int(task.name) for task in Path("/proc/self/task").iterdir()]
    own_group = autogroup_of("self")
    for store in emulated._stores:  # the bench owns this world
        if store.pid is not None:
            for pid in process_tree(store.pid):
                pids.append(pid)
                if autogroup_of(pid) not in (None, own_group):
                    with contextlib.suppress(OSError):
                        Path(f"/proc/{pid}/autogroup").write_text(str(STAND_IN_GROUP_NICENESS))
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, STAND_IN_NICENESS)
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def autogroup_of(pid: int | str) -> str | None:
    """The autogroup a process is in ("/autogroup-123"), None without autogroups."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        return None


def autogroups() -> str:
    """What the ack phases ran under, for the JSON (the bench only reads the setting).

    With the kernel's sched_autogroup on (most distributions' default) the scheduler
    first shares the CPUs between sessions, and only then by policy and niceness
    within each. Every Postgres backend starts a session of its own, so at niceness 0
    each counted as much as the whole bench, servers under test included, and
    SCHED_IDLE meant nothing for it: measured on 2 vCPUs, rollbot's load generator
    waited behind the backends its worker's jobs kept busy. The stores' groups at
    niceness 19 (`stand_ins_yield_cpu`) weigh 15 against the bench's 1024: the same
    ranking, kept within the bench's own processes. Autogroups apply only to tasks in
    the root cgroup, so containers (Cloud Run, Docker) never have them."""
    try:
        enabled = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "none (no such setting)"
    if enabled == "0":
        return "off (the machine's setting)"
    return f"on: the stores' own groups at niceness {STAND_IN_GROUP_NICENESS}"


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
                stand_ins_yield_cpu(emulated)
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
