"""rollbot's benchmark: ack latency, end-to-end rollback time, idle memory, start-up.

    .venv/bin/python bench/run.py [--quick] [--calibrate] [--only e2e|acks]

One command, not part of the test run; everything on 127.0.0.1, stops by itself.
See bench/README.md for what is measured, how, and the targets. Prints a table and
writes bench/results/latest.json (bench/results/ is gitignored).

Processes: this one runs the emulators (Slack, Google Cloud gRPC, target app) and the
embedded Postgres/Redis; the server under test (`python -m bot serve`, or a bare Bolt
app from bench/bare_bolt.py) is a subprocess; the load generator (bench/loadgen.py)
is another subprocess, so its CPU never runs on the server's event loop.

This module runs the whole; the rest lives beside it in bench/: common.py (constants,
the Plan), procs.py (process helpers, the servers under test), acks.py (1. ack
latency), e2e.py (2. end to end), scale.py (2b. ten rollbacks confirmed together),
gradual.py (2c. gradual rollbacks: aborts, and ten rollouts' analyses on time),
report.py (the verdicts and the table).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

# The sibling modules: a script's own directory is first on sys.path already, but not
# when this file is started otherwise (e.g. `python -m bench.run`).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from acks import STAND_IN_NICENESS, autogroups, measure_acks
from common import (
    FULL,
    OPERATION_DELAY,
    QUICK,
    RESULTS,
    SCALE_SERVICES,
    SLACK_LATENCY,
    Plan,
)
from e2e import SlackDelay, WatchedService, measure_e2e, watch_service
from gradual import measure_gradual
from procs import Server, bare_server, bot_server, loadavg, memory_mb, read_status_kb
from report import CALIBRATION, missed, table, verdicts
from scale import in_world_while, measure_scale, scale_services

from bot.stores.migrations import migrate
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import default_world

# --- the run --------------------------------------------------------------------------

PHASES = ("e2e", "acks")  # start-up and idle memory always run: they start the bot


async def run(plan: Plan, quick: bool, calibrate: bool = False,
              phases: Sequence[str] = PHASES) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick, "phases": list(phases),
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
    world = default_world(bad_latest=True)
    # 00013-ghi (a target the e2e rollbacks alternate to) reads API_SECRET_KEY version 1,
    # disabled in the demo world: a rollback blocker. Enabled here, so both targets can
    # be confirmed as before.
    world.secrets["API_SECRET_KEY"].versions["1"].state = "ENABLED"
    # The scale phase's services: in the catalog the emulators write as they start,
    # in the world from their phase on (see scale.in_world_while).
    together = scale_services(world, SCALE_SERVICES if "e2e" in phases else 0)
    with in_world_while(world, together):
        emulated = await EmulatedWorld.start(
            world=world, with_stores=True, operation_delay=OPERATION_DELAY,
            verification_window=1.5, verification_interval=0.2,
            # Gradual rollbacks (phase 2c): 6 s steps analysed every 2 s, judged from
            # the ~10 requests a second the target app sends each half of a split.
            gradual=(6.0, 2.0), min_requests=5)
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

        if "e2e" in phases:
            await measure_end_to_end(emulated, bot.url + "/slack/events", plan, together, results)
        if "acks" in phases:
            await measure_ack_phases(emulated, plan, bot, servers, calibrate, results)
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


async def measure_end_to_end(emulated: EmulatedWorld, events_url: str, plan: Plan,
                             together: dict[str, WatchedService],
                             results: dict[str, Any]) -> None:
    """2. end to end, with the emulators adding latency: lone rollbacks, then the
    scale phase's ten at once, compared with the lone ones of this run."""
    print("end-to-end rollbacks …", flush=True)
    results["e2e"] = await measure_e2e(emulated, events_url, plan.e2e_runs, 0.0)
    results["e2e_slack_latency"] = await measure_e2e(
        emulated, events_url, plan.e2e_runs, SLACK_LATENCY)
    print(f"scale: {len(together)} rollbacks confirmed together …", flush=True)
    results["scale"] = scale = await measure_scale(
        emulated, events_url, together, results["e2e"]["traffic_ms"])
    print(f"  Confirm→traffic median {scale['traffic_ms']:.1f} ms (lone "
          f"{scale['lone_traffic_ms']:.1f} ms), max {scale['traffic_max_ms']:.1f} ms; jobs "
          f"started after another's verdict: {scale['started_after_another_verdict'] or 'none'}",
          flush=True)
    print("gradual rollbacks …", flush=True)
    results["gradual"] = await measure_gradual(emulated, events_url, len(together))


async def measure_ack_phases(emulated: EmulatedWorld, plan: Plan, bot: Server,
                             servers: list[Server], calibrate: bool,
                             results: dict[str, Any]) -> None:
    """1. ack latency: rollbot and the two bare Bolt apps (three with --calibrate),
    interleaved. The bare apps join `servers`, so the caller stops them."""
    print("ack latency …", flush=True)
    under_test = {"rollbot": bot}
    bare_apps = [("bolt_default", "default"), ("bolt_floor", "floor")]
    if calibrate:  # a second floor app, measured like the others (an A/A comparison)
        bare_apps.append((CALIBRATION, "floor"))
    for name, mode in bare_apps:
        bare = bare_server(emulated, mode)
        bare.name = name.replace("_", "-")
        servers.append(bare)
        await bare.start()
        await bare.wait_ok("/healthz")
        under_test[name] = bare
    results["autogroups_during_acks"] = autogroups()
    results["ack"] = await measure_acks(emulated, plan, under_test)


# --- the command ----------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rollbot benchmark (see bench/README.md)")
    parser.add_argument("--quick", action="store_true", help="fewer requests and rollbacks")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--calibrate", action="store_true",
                        help="also measure a second floor app: the ratios' noise band")
    parser.add_argument("--only", choices=PHASES, action="append",
                        help="run only this phase (repeatable): e2e = the lone end-to-end "
                             "rollbacks and the scale phase, acks = ack latency; start-up "
                             "and idle memory always run")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    # gRPC logs a line on every fork of a process that uses it (each subprocess spawn).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    began = time.perf_counter()
    results = asyncio.run(asyncio.wait_for(
        run(plan, args.quick, args.calibrate, args.only or PHASES), timeout=600))
    rows = verdicts(results, plan)
    results["table"] = rows
    results["elapsed_s"] = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print()
    print(table(rows))
    failed = missed(rows)
    unanswered = sum(ph.get("unanswered_commands", 0) or 0
                     for ph in results.get("ack", {}).get("rollbot", {}).values())
    if results["slack_refused_calls"] or unanswered > 1:
        print(f"\nWARNING: rollbot's answers were not all right: Slack emulator refused "
              f"{results['slack_refused_calls'] or 'nothing'}; commands left unanswered: "
              f"{unanswered} (see bench/results/rollbot.log)")
    print(f"\n{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else "")
          + f". Took {results['elapsed_s']:.0f}s. JSON: {args.out}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
