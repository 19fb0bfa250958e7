"""The benchmark's report: each result against its target, as rows and as a table.

`verdicts` turns bench/run.py's results into rows (metric, unit, rollbot's value,
the bare Bolt apps' where they have one, target, pass); `table` lays them out, and
`missed` names the targets missed. Phases a run left out have no rows.
"""

from __future__ import annotations

from typing import Any

from acks import WORKERS_PAUSED
from common import (
    PACE,
    TARGET_ACK_MAX_200,
    TARGET_ACK_P50_1,
    TARGET_ACK_P99_50,
    TARGET_E2E_RATIO,
    TARGET_GRADUAL_ABORT_RATIO,
    TARGET_GRADUAL_LATE_S,
    TARGET_RSS_MB,
    TARGET_SCALE_RATIO,
    TARGET_START_S,
    Plan,
)

CALIBRATION = "bolt_floor_twin"  # the second floor app of --calibrate


class Rows(list[dict[str, Any]]):
    def add(self, metric: str, unit: str, value: Any, target: str = "",
            ok: bool | None = None, default: Any = None, floor_value: Any = None) -> None:
        self.append({"metric": metric, "unit": unit, "rollbot": value, "default_bolt": default,
                     "floor_bolt": floor_value, "target": target, "pass": ok})


def verdicts(r: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    rows = Rows()
    if "ack" in r:
        ack_rows(rows, r["ack"], plan)
    if "e2e" in r:
        e2e_rows(rows, r)
        scale_rows(rows, r["scale"])
    if "gradual" in r:
        gradual_rows(rows, r["gradual"])
    memory = r["memory"]
    total = memory["idle_pss_total_mb"]
    rows.add(f"idle memory, all {memory['idle']['processes']} processes (PSS)", "MB", total,
             f"< {TARGET_RSS_MB:g}", 0 < total < TARGET_RSS_MB)
    rows.add("  RSS of the listener (the workers share its pages)", "MB", memory["idle_rss_mb"])
    start = r["startup"]["start_s"]
    rows.add("start-up, spawn→/healthz 200", "s", start, f"< {TARGET_START_S:g}",
             start < TARGET_START_S)
    rows.add("  first start on an empty database", "s", r["startup"]["first_start_empty_db_s"])
    return rows


def ack_rows(rows: Rows, ack: dict[str, Any], plan: Plan) -> None:
    bot, dflt, floor = ack["rollbot"], ack["bolt_default"], ack["bolt_floor"]
    lo, mid, hi = plan.levels[0], plan.levels[-1], plan.burst

    def ack_row(metric: str, key: str, phase: str, limit: float | None = None,
                target: str = "") -> None:
        values = [d[phase][key] for d in (bot, dflt, floor)]
        rows.add(metric, "ms" if key.endswith("_ms") else "", values[0], target,
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
            rows.add(f"  calibration: a second floor app / the floor, ack {label}", "×",
                     twin[phase][key] / floor[phase][key], "(1 = no noise)")
    drained = bot[f"c{hi}"].get("jobs_drained_after_s")
    rows.add(f"  rollbot's answers all posted, s after the @{hi} burst", "s", drained,
             "" if drained is not None else "queue not drained in 90 s")


def e2e_rows(rows: Rows, r: dict[str, Any]) -> None:
    for key, label in (("e2e", "Google +50 ms"), ("e2e_slack_latency", "Google & Slack +50 ms")):
        e2e = r[key]
        for what, name in (("traffic", "Confirm→traffic change"),
                           ("first_check", "Confirm→1st check line")):
            rows.add(f"{name}, median ({label})", "ms", e2e[f"{what}_ms"],
                     f"critical path {e2e[f'{what}_critical_ms']:.0f} ms, "
                     f"runbook minimum {e2e[f'{what}_minimum_ms']:.0f} ms")
            ratio = e2e[f"{what}_ratio"]
            rows.add("  ratio to the critical path", "×", ratio, f"≤ {TARGET_E2E_RATIO:g}",
                     ratio <= TARGET_E2E_RATIO)
            if e2e["slack_latency_ms"]:
                minimum = e2e[f"{what}_minimum_ratio"]
                rows.add("  ratio to the runbook minimum", "×", minimum,
                         f"≤ {TARGET_E2E_RATIO:g}", minimum <= TARGET_E2E_RATIO)


def scale_rows(rows: Rows, scale: dict[str, Any]) -> None:
    n, lone = scale["services"], scale["lone_traffic_ms"]
    limit = TARGET_SCALE_RATIO * lone
    rows.add(f"Confirm→traffic change, median of {n} confirmed together (Google +50 ms)",
             "ms", scale["traffic_ms"], f"≤ {TARGET_SCALE_RATIO:g}× lone = {limit:.0f}",
             scale["traffic_ms"] <= limit)
    rows.add("  ratio to a lone rollback's median (this run)", "×",
             scale["traffic_ratio_to_lone"])
    rows.add(f"  the slowest of the {n}", "ms", scale["traffic_max_ms"])
    spread = scale["clicks_spread_ms"]
    rows.add(f"  the {n} clicks sent within", "ms", spread, "< 1000 (the same second)",
             spread < 1000)
    waited = scale["started_after_another_verdict"]
    rows.add(f"jobs of the {n} that started after another's verdict", "", len(waited),
             "0" if not waited else "0: " + ", ".join(waited), not waited)


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


def missed(rows: list[dict[str, Any]]) -> list[str]:
    """The targets missed, a sub-row named with the row it belongs to."""
    failed, parent = [], ""
    for r in rows:
        if not r["metric"].startswith(" "):
            parent = r["metric"]
        if r["pass"] is False:
            failed.append(r["metric"] if r["metric"] == parent
                          else f"{parent}: {r['metric'].strip()}")
    return failed


def gradual_rows(rows: Rows, g: dict[str, Any]) -> None:
    for key, name in (("abort_on_failure", "failing analysis' last read→split restored"),
                      ("abort_click", "Abort click→split restored")):
        run = g[key]
        rows.add(f"gradual: {name}", "ms", run["ms"],
                 f"injected waits on the path {run['injected_ms']:.0f} ms")
        rows.add("  ratio to the injected waits", "×", run["ratio"],
                 f"≤ {TARGET_GRADUAL_ABORT_RATIO:g}", run["ratio"] <= TARGET_GRADUAL_ABORT_RATIO)
    together = g["ten_at_once"]
    rows.add(f"gradual: {together['rollouts']} at once, latest analysis after its time", "s",
             together["late_max_s"], f"≤ {TARGET_GRADUAL_LATE_S:g}",
             together["late_max_s"] <= TARGET_GRADUAL_LATE_S)
    rows.add(f"  median of their {together['analyses']} analyses", "s", together["late_p50_s"])
