"""Analysis as data (Argo Rollouts / Flagger style): a measurement compared with
the baseline and the catalog's thresholds decides pass or fail.

Pure: the sources (Cloud Monitoring, the service's /metrics, Cloud Logging)
are read in bot/measure.py; this module only judges.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from bot.catalog import VerificationSection
from bot.rollbacks.model import Verdict

Outcome = Literal["pass", "fail", "unknown"]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What one look at the service saw."""

    label: str  # "baseline", "immediately", "2 min", …
    source: str  # "cloud_monitoring (revision X)" | "metrics_url" | "none"
    error_rate: float | None = None
    p95_latency_ms: float | None = None
    requests: float | None = None
    log_errors: int | None = None  # severity>=ERROR entries in the window
    log_window_seconds: float | None = None
    log_samples: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # sources that could not be read, said plainly

    @property
    def log_errors_per_minute(self) -> float | None:
        if self.log_errors is None or not self.log_window_seconds:
            return None
        return self.log_errors / (self.log_window_seconds / 60)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["log_samples"] = list(self.log_samples)
        data["problems"] = list(self.problems)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        data = dict(data)
        data["log_samples"] = tuple(data.get("log_samples", ()))
        data["problems"] = tuple(data.get("problems", ()))
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the before/after table."""

    metric: str
    before: str
    after: str
    change: str
    outcome: Outcome
    rule: str


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _per_min(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}/min"


def _change(before: float | None, after: float | None, fmt: str) -> str:
    if before is None or after is None:
        return "—"
    delta = after - before
    if fmt == "pct":
        return f"{delta * 100:+.2f} pp"
    if fmt == "ms":
        return f"{delta:+.0f} ms"
    return f"{delta:+.1f}/min"


def compare(baseline: Measurement | None, after: Measurement,
            policy: VerificationSection) -> list[Row]:
    """The table: error rate and latency against thresholds, log errors
    against the baseline (they must be lower, or zero)."""
    before = baseline or Measurement(label="baseline", source="none")
    rows: list[Row] = []

    enough = after.requests is None or after.requests >= policy.min_requests
    rate_ok: Outcome = ("unknown" if after.error_rate is None or not enough
                        else "pass" if after.error_rate <= policy.max_error_rate else "fail")
    rows.append(Row("5xx rate", _pct(before.error_rate), _pct(after.error_rate),
                    _change(before.error_rate, after.error_rate, "pct"), rate_ok,
                    f"≤ {_pct(policy.max_error_rate)}"))

    latency_ok: Outcome = (
        "unknown" if after.p95_latency_ms is None or not enough
        else "pass" if after.p95_latency_ms <= policy.max_p95_latency_ms else "fail")
    rows.append(Row("p95 latency", _ms(before.p95_latency_ms), _ms(after.p95_latency_ms),
                    _change(before.p95_latency_ms, after.p95_latency_ms, "ms"), latency_ok,
                    f"≤ {_ms(policy.max_p95_latency_ms)}"))

    b_logs, a_logs = before.log_errors_per_minute, after.log_errors_per_minute
    tolerated = policy.tolerated_log_errors
    if a_logs is None:
        logs_ok: Outcome = "unknown"
    elif (after.log_errors or 0) <= tolerated or (b_logs is not None and a_logs < b_logs):
        logs_ok = "pass"
    else:
        logs_ok = "fail" if b_logs is not None else "unknown"
    rule = f"lower than before, or ≤ {tolerated} in all" if tolerated else "lower than before"
    rows.append(Row("errors in logs", _per_min(b_logs), _per_min(a_logs),
                    _change(b_logs, a_logs, "rate"), logs_ok, rule))
    return rows


def judge(immediate_ok: bool, tables: list[list[Row]]) -> Verdict:
    """failed: the immediate checks failed. degraded: they passed but the latest
    metrics fail a threshold (or could not be read at all). verified: all passed."""
    if not immediate_ok:
        return Verdict.FAILED
    if not tables:
        return Verdict.VERIFIED
    latest = tables[-1]
    if any(row.outcome == "fail" for row in latest):
        return Verdict.DEGRADED
    if all(row.outcome == "unknown" for row in latest):
        return Verdict.DEGRADED
    return Verdict.VERIFIED
