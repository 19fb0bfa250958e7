"""Analysis as data (Argo Rollouts / Flagger style): a measurement compared with
the baseline and the catalog's thresholds gives each metric pass, fail or
inconclusive (with the reason), and `judge` turns those into one verdict.

Pure: the sources (Cloud Monitoring, the service's /metrics, Cloud Logging)
are read in bot/measure.py; this module only judges. No data is never a pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from bot.catalog import VerificationSection
from bot.changes.model import Verdict


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # too few requests, or the source could not be read


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
    metrics_problems: tuple[str, ...] = ()  # why the 5xx rate and latency sources failed
    logs_problem: str | None = None  # why Cloud Logging could not be read

    @property
    def problems(self) -> tuple[str, ...]:
        """Every source that could not be read, said plainly."""
        return (*self.metrics_problems, *([self.logs_problem] if self.logs_problem else []))

    @property
    def log_errors_per_minute(self) -> float | None:
        if self.log_errors is None or not self.log_window_seconds:
            return None
        return self.log_errors / (self.log_window_seconds / 60)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["log_samples"] = list(self.log_samples)
        data["metrics_problems"] = list(self.metrics_problems)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        data = dict(data)
        # Stored before the metrics' problems were kept apart from the logs' one.
        legacy = data.pop("problems", ())
        data["log_samples"] = tuple(data.get("log_samples", ()))
        data["metrics_problems"] = tuple(data.get("metrics_problems", legacy))
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
    reason: str = ""  # why it failed or is inconclusive, for people; "" when it passed


@dataclasses.dataclass(frozen=True)
class Judgement:
    """A verdict and why it is not `verified` (empty when it is)."""

    verdict: Verdict
    reasons: tuple[str, ...] = ()


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


def _unknown_because(after: Measurement, value: float | None,
                     policy: VerificationSection) -> str | None:
    """Why a rate or percentile of `after` says nothing, or None when it can be judged."""
    if after.requests is not None and after.requests < policy.min_requests:
        return f"{after.requests:.0f} requests, fewer than `min_requests` {policy.min_requests}"
    if value is not None:
        return None
    if after.metrics_problems:
        return " and ".join(after.metrics_problems)
    if after.source == "none":
        return "no metrics source (neither Cloud Monitoring nor `metrics_url`)"
    return f"{after.source} had no data"


def _threshold_row(metric: str, before: float | None, after: float | None, limit: float,
                   fmt: str, unknown: str | None) -> Row:
    show = _pct if fmt == "pct" else _ms
    rule = f"≤ {show(limit)}"
    cells = (metric, show(before), show(after), _change(before, after, fmt))
    if unknown is not None or after is None:
        return Row(*cells, Outcome.INCONCLUSIVE, rule, unknown or "no data")
    if after <= limit:
        return Row(*cells, Outcome.PASS, rule)
    return Row(*cells, Outcome.FAIL, rule, f"{show(after)}, above {show(limit)}")


def _logs_row(before: Measurement, after: Measurement, tolerated: int) -> Row:
    """Errors in logs pass when fewer per minute than before, or no more than
    `tolerated` in all (a rate from one line over seconds is noise)."""
    b_logs, a_logs = before.log_errors_per_minute, after.log_errors_per_minute
    rule = f"lower than before, or ≤ {tolerated} in all" if tolerated else "lower than before"
    cells = ("errors in logs", _per_min(b_logs), _per_min(a_logs),
             _change(b_logs, a_logs, "rate"))
    if a_logs is None:
        return Row(*cells, Outcome.INCONCLUSIVE, rule,
                   after.logs_problem or "Cloud Logging was not read")
    count = after.log_errors or 0
    if count <= tolerated or (b_logs is not None and a_logs < b_logs):
        return Row(*cells, Outcome.PASS, rule)
    too_many = f"{count} errors, more than `tolerated_log_errors` {tolerated}"
    if b_logs is None:
        return Row(*cells, Outcome.INCONCLUSIVE, rule,
                   f"{too_many}, and no baseline to compare with")
    return Row(*cells, Outcome.FAIL, rule,
               f"{_per_min(a_logs)}, not lower than {_per_min(b_logs)} before; {too_many}")


def compare(baseline: Measurement | None, after: Measurement,
            policy: VerificationSection) -> list[Row]:
    """The table: error rate and latency against thresholds, log errors
    against the baseline (they must be lower, or few)."""
    before = baseline or Measurement(label="baseline", source="none")
    return [
        _threshold_row("5xx rate", before.error_rate, after.error_rate, policy.max_error_rate,
                       "pct", _unknown_because(after, after.error_rate, policy)),
        _threshold_row("p95 latency", before.p95_latency_ms, after.p95_latency_ms,
                       policy.max_p95_latency_ms, "ms",
                       _unknown_because(after, after.p95_latency_ms, policy)),
        _logs_row(before, after, policy.tolerated_log_errors),
    ]


def inconclusive_summary(rows: Sequence[Row]) -> str:
    """`5xx rate, p95 latency: 15 requests, fewer than …`: the inconclusive rows,
    grouped by reason (one reason usually covers several metrics)."""
    by_reason: dict[str, list[str]] = {}
    for row in rows:
        if row.outcome == Outcome.INCONCLUSIVE:
            by_reason.setdefault(row.reason, []).append(row.metric)
    return "; ".join(f"{', '.join(metrics)}: {reason}" for reason, metrics in by_reason.items())


def judge(immediate_ok: bool, rows: Sequence[Row], *,
          so_far: Verdict | None = None) -> Judgement:
    """The verdict from the immediate checks and one measurement's rows.

    failed: the immediate checks failed. degraded: they passed, but a metric failed
    its threshold or is inconclusive (no data is never a pass), or nothing was
    measured. verified: every row passed.

    `so_far`: the verdict before these rows, given while more measurements are due.
    Rows that are merely inconclusive then leave it as it is (seconds after a change
    few requests have reached the new revision); a failed row still lowers it. The
    last measurement and `/rollback verify` give none: inconclusive is degraded.
    """
    failed = [f"{row.metric}: {row.reason}" for row in rows if row.outcome == Outcome.FAIL]
    unknown = any(row.outcome == Outcome.INCONCLUSIVE for row in rows)
    reasons = [*([] if immediate_ok else ["the immediate checks failed"]), *failed]
    if not rows:
        reasons.append("metrics unknown: nothing was measured")
    elif unknown:
        reasons.append(f"metrics unknown ({inconclusive_summary(rows)})")
    if not immediate_ok:
        return Judgement(Verdict.FAILED, tuple(reasons))
    if so_far is not None and unknown and not failed:
        return Judgement(so_far, () if so_far == Verdict.VERIFIED else tuple(reasons))
    return Judgement(Verdict.DEGRADED if reasons else Verdict.VERIFIED, tuple(reasons))


@dataclasses.dataclass(frozen=True)
class StepJudgement:
    """One analysis of a gradual rollout's step: pass, fail or inconclusive, and why."""

    outcome: Outcome
    reasons: tuple[str, ...] = ()


def judge_step(target: Measurement, checks_ok: Sequence[tuple[str, bool, str]],
               policy: VerificationSection) -> StepJudgement:
    """The target revision's interval against the service's thresholds, and its own
    URL's checks (name, ok, detail). A failed check or threshold fails; too few
    requests or no metrics is inconclusive (a human decides), never a pass."""
    failed = [f"{name} on the target's URL: {detail}" for name, ok, detail in checks_ok
              if not ok]
    unknown = _unknown_because(target, target.error_rate, policy)
    if unknown is None and target.p95_latency_ms is None:
        unknown = _unknown_because(target, target.p95_latency_ms, policy)
    if unknown is None:  # rates from too few requests are noise: judged only when known
        if target.error_rate is not None and target.error_rate > policy.max_error_rate:
            failed.append(f"5xx rate {_pct(target.error_rate)} > "
                          f"{_pct(policy.max_error_rate)}")
        if (target.p95_latency_ms is not None
                and target.p95_latency_ms > policy.max_p95_latency_ms):
            failed.append(f"p95 latency {_ms(target.p95_latency_ms)} > "
                          f"{_ms(policy.max_p95_latency_ms)}")
    if failed:
        return StepJudgement(Outcome.FAIL, tuple(failed))
    if unknown is not None:
        return StepJudgement(Outcome.INCONCLUSIVE, (f"metrics unknown: {unknown}",))
    return StepJudgement(Outcome.PASS)
