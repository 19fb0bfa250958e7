"""Take a measurement of a service: 5xx rate and p95 latency (Cloud Monitoring
per revision where available, else two scrapes of the service's /metrics) and
the ERROR entries in Cloud Logging. A source that fails is reported in the
measurement, never raised: verification must go on and say what it could not see."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

import aiohttp

from bot.deps import Deps
from bot.judgement import Measurement
from integrations import prom_metrics
from integrations.google_retry import GoogleCallError
from integrations.monitoring import RevisionMetrics, combine_revisions

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _said(service: str, exc: GoogleCallError) -> str:
    """The error as people read it, naming the service once ("Cloud Monitoring
    unavailable: …" already does; "permission denied: …" does not)."""
    return exc.message if exc.message.startswith(service) else f"{service}: {exc.message}"


@dataclasses.dataclass(frozen=True)
class _Metrics:
    """5xx rate, p95 and requests from one source over one window: per revision
    (Cloud Monitoring) or for the whole service (scrapes of its /metrics)."""

    source: str  # "cloud_monitoring" | "metrics_url" | "none"
    per_revision: dict[str, RevisionMetrics] | None = None
    window: prom_metrics.WindowMetrics | None = None
    problems: tuple[str, ...] = ()

    def of(self, revisions: Sequence[str] | None) -> tuple[float | None, float | None,
                                                         float | None]:
        """(error rate, p95 ms, requests) of `revisions` (None: all of them); a scrape
        cannot tell revisions apart and answers for the whole service."""
        if self.per_revision is not None:
            merged = combine_revisions(self.per_revision, self.per_revision
                                       if revisions is None else revisions)
            if merged is None:
                return None, None, 0.0  # none of them served anything
            return merged.error_rate, merged.p95_latency_ms, float(merged.requests)
        if self.window is not None:
            return self.window.error_rate, self.window.p95_latency_ms, self.window.requests
        return None, None, None


async def _read_metrics(deps: Deps, service: str, start: dt.datetime,
                        end: dt.datetime) -> _Metrics:
    svc = deps.catalog.services[service]
    policy = svc.verification
    problems: list[str] = []
    use_monitoring = deps.monitoring is not None and policy.metrics_source in (
        "auto", "cloud_monitoring")
    if use_monitoring and deps.monitoring is not None:
        try:
            # Cloud Monitoring needs a non-empty window: look back at least a minute.
            window_start = min(start, end - dt.timedelta(seconds=60))
            per_revision = await deps.monitoring.revision_metrics(
                svc.cloud_run_service, deps.catalog.region_of(service), window_start, end)
            return _Metrics("cloud_monitoring", per_revision=per_revision)
        except GoogleCallError as exc:
            problems.append(_said("Cloud Monitoring", exc))
    if svc.metrics_url:
        try:
            async with aiohttp.ClientSession() as session:
                window = await prom_metrics.measure(
                    session, svc.metrics_url, interval=policy.scrape_interval_seconds,
                    timeout=policy.timeout_seconds)
            return _Metrics("metrics_url", window=window, problems=tuple(problems))
        except prom_metrics.MetricsScrapeError as exc:
            problems.append(exc.message)  # "metrics at URL answered 503 …"
    return _Metrics("none", problems=tuple(problems))


def _source(metrics: _Metrics, revision: str | None) -> str:
    if metrics.source == "cloud_monitoring":
        return f"Cloud Monitoring ({revision})" if revision else "Cloud Monitoring"
    return metrics.source


async def measure(deps: Deps, service: str, label: str, *, since: dt.datetime | None,
                  revision: str | None = None) -> Measurement:
    """`since`: start of the window (the traffic change); None for a baseline,
    which looks back `baseline_seconds`."""
    svc = deps.catalog.services[service]
    policy = svc.verification
    end = _now()
    start = since or end - dt.timedelta(seconds=policy.baseline_seconds)
    metrics = await _read_metrics(deps, service, start, end)
    error_rate, p95, requests = metrics.of([revision] if revision else None)

    log_errors: int | None = None
    logs_problem: str | None = None
    samples: tuple[str, ...] = ()
    window_seconds = (end - start).total_seconds()
    if deps.logs is not None:
        try:
            summary = await deps.logs.error_summary(svc.cloud_run_service, start, end)
            log_errors, samples = summary.count, summary.samples
        except GoogleCallError as exc:
            logs_problem = _said("Cloud Logging", exc)
    return Measurement(
        label=label, source=_source(metrics, revision), error_rate=error_rate,
        p95_latency_ms=p95, requests=requests, log_errors=log_errors,
        log_window_seconds=window_seconds if log_errors is not None else None,
        log_samples=samples, metrics_problems=metrics.problems, logs_problem=logs_problem)


async def measure_split(deps: Deps, service: str, label: str, *, start: dt.datetime,
                        end: dt.datetime, target: str, replaced: Sequence[str]
                        ) -> tuple[Measurement, Measurement, bool]:
    """One read of the metrics for a traffic split: the target revision and the
    revisions it replaces, side by side, and whether the source told them apart
    (False for scrapes of the service's /metrics: both are the whole service)."""
    metrics = await _read_metrics(deps, service, start, end)
    apart = metrics.per_revision is not None

    def of(revisions: Sequence[str], named: str) -> Measurement:
        error_rate, p95, requests = metrics.of(revisions)
        return Measurement(label=label, source=_source(metrics, named),
                           error_rate=error_rate, p95_latency_ms=p95, requests=requests,
                           metrics_problems=metrics.problems)

    return of([target], target), of(list(replaced), ", ".join(replaced)), apart
