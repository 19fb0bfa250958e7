"""rollbot's benchmark: ack latency, end-to-end rollback time, idle memory, start-up.

    .venv/bin/python bench/run.py [--quick]

One command, not part of the test run; everything on 127.0.0.1, stops by itself.
See bench/README.md for what is measured, how, and the targets. Prints a table and
writes bench/results/latest.json (bench/results/ is gitignored).

Processes: this one runs the emulators (Slack, Google Cloud gRPC, target app) and the
embedded Postgres/Redis; the server under test (`python -m bot serve`, or a bare Bolt
app from bench/bare_bolt.py) is a subprocess; the load generator (bench/loadgen.py)
is another subprocess, so its CPU never runs on the server's event loop.

This module runs the whole and reports; the rest lives beside it in bench/: common.py
(constants, the Plan), procs.py (process helpers, the servers under test), acks.py
(1. ack latency), e2e.py (2. end to end).
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

from acks import STAND_IN_NICENESS, WORKERS_PAUSED, autogroups_off, measure_acks
from common import (
    FULL,
    OPERATION_DELAY,
    PACE,
    QUICK,
    RESULTS,
    SLACK_LATENCY,
    TARGET_ACK_MAX_200,
    TARGET_ACK_P50_1,
    TARGET_ACK_P99_50,
    TARGET_E2E_RATIO,
    TARGET_RSS_MB,
    TARGET_START_S,
    Plan,
)
from e2e import SlackDelay, measure_e2e, watch_service
from procs import Server, bare_server, bot_server, loadavg, memory_mb, read_status_kb

from bot.stores.migrations import migrate
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import default_world

# --- the run --------------------------------------------------------------------------

async def run(plan: Plan, quick: bool, calibrate: bool = False) -> dict[str, Any]:
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
        with autogroups_off() as autogroups:
            results["autogroups_during_acks"] = autogroups
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


CALIBRATION = "bolt_floor_twin"


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
    floor_p99 = floor[f"c{mid}"]["median_round_p99_ms"]
    ack_row(f"ack p50 @{lo}", "p50_ms", f"c{lo}", TARGET_ACK_P50_1 * floor_p50,
            f"≤ {TARGET_ACK_P50_1:g}× floor = {TARGET_ACK_P50_1 * floor_p50:.2f}")
    ack_row(f"ack p99 @{lo}", "p99_ms", f"c{lo}")
    ack_row(f"  ack p50 @1 paced {PACE * 1000:.0f} ms apart (diagnostic)", "p50_ms", "c1_paced")
    ack_row("  ack p50 @1, rollbot's workers stopped (diagnostic: the listener alone)",
            "p50_ms", WORKERS_PAUSED)
    for level in plan.levels[1:]:
        ack_row(f"ack p50 @{level}", "p50_ms", f"c{level}")
        if level == mid:
            rounds = bot[f"c{mid}"]["rounds"]
            ack_row(f"ack p99 @{mid}, the median of its {rounds} rounds' p99",
                    "median_round_p99_ms", f"c{mid}", TARGET_ACK_P99_50 * floor_p99,
                    f"≤ {TARGET_ACK_P99_50:g}× floor = {TARGET_ACK_P99_50 * floor_p99:.2f}")
            ack_row(f"  ack p99 @{mid}, all rounds pooled (diagnostic)", "p99_ms", f"c{mid}")
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
    if CALIBRATION in ack:  # the noise band of the ratios above, on this run
        twin = ack[CALIBRATION]
        for label, key, phase in ((f"p50 @{lo}", "p50_ms", f"c{lo}"),
                                  (f"p99 @{mid} (median round)", "median_round_p99_ms",
                                   f"c{mid}"),
                                  (f"p99 @{mid} (pooled)", "p99_ms", f"c{mid}")):
            add(f"  calibration: a second floor app / the floor, ack {label}", "×",
                twin[phase][key] / floor[phase][key], "(1 = no noise)")
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
    parser.add_argument("--calibrate", action="store_true",
                        help="also measure a second floor app: the ratios' noise band")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    # gRPC logs a line on every fork of a process that uses it (each subprocess spawn).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    began = time.perf_counter()
    results = asyncio.run(asyncio.wait_for(run(plan, args.quick, args.calibrate), timeout=600))
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
