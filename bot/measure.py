"""Take a measurement of a service: 5xx rate and p95 latency (Cloud Monitoring
per revision where available, else two scrapes of the service's /metrics) and
the ERROR entries in Cloud Logging. A source that fails is reported in the
measurement, never raised: verification must go on and say what it could not see."""

from __future__ import annotations

import datetime as dt
import logging

import aiohttp

from bot.deps import Deps
from bot.judgement import Measurement
from integrations import prom_metrics
from integrations.google_retry import GoogleCallError

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _said(service: str, exc: GoogleCallError) -> str:
    """The error as people read it, naming the service once ("Cloud Monitoring
    unavailable: …" already does; "permission denied: …" does not)."""
    return exc.message if exc.message.startswith(service) else f"{service}: {exc.message}"


async def measure(deps: Deps, service: str, label: str, *, since: dt.datetime | None,
                  revision: str | None = None) -> Measurement:
    """`since`: start of the window (the traffic change); None for a baseline,
    which looks back `baseline_seconds`."""
    svc = deps.catalog.services[service]
    policy = svc.verification
    region = deps.catalog.region_of(service)
    end = _now()
    start = since or end - dt.timedelta(seconds=policy.baseline_seconds)
    metrics_problems: list[str] = []
    error_rate = p95 = requests = None
    source = "none"

    use_monitoring = deps.monitoring is not None and policy.metrics_source in (
        "auto", "cloud_monitoring")
    if use_monitoring and deps.monitoring is not None:
        try:
            # Cloud Monitoring needs a non-empty window: look back at least a minute.
            window_start = min(start, end - dt.timedelta(seconds=60))
            per_revision = await deps.monitoring.revision_metrics(
                svc.cloud_run_service, region, window_start, end)
            picked = ([per_revision[revision]] if revision and revision in per_revision
                      else list(per_revision.values()) if not revision else [])
            total = sum(m.requests for m in picked)
            errors = sum(m.errors_5xx for m in picked)
            requests = float(total)
            error_rate = errors / total if total else None
            latencies = [m.p95_latency_ms for m in picked if m.p95_latency_ms is not None]
            p95 = max(latencies) if latencies else None
            source = f"Cloud Monitoring ({revision})" if revision else "Cloud Monitoring"
        except GoogleCallError as exc:
            metrics_problems.append(_said("Cloud Monitoring", exc))
            use_monitoring = False
    if not use_monitoring and svc.metrics_url:
        try:
            async with aiohttp.ClientSession() as session:
                window = await prom_metrics.measure(
                    session, svc.metrics_url, interval=policy.scrape_interval_seconds,
                    timeout=policy.timeout_seconds)
            error_rate, p95, requests = window.error_rate, window.p95_latency_ms, window.requests
            source = "metrics_url"
        except prom_metrics.MetricsScrapeError as exc:
            metrics_problems.append(exc.message)  # "metrics at URL answered 503 …"

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
        label=label, source=source, error_rate=error_rate, p95_latency_ms=p95,
        requests=requests, log_errors=log_errors,
        log_window_seconds=window_seconds if log_errors is not None else None,
        log_samples=samples, metrics_problems=tuple(metrics_problems), logs_problem=logs_problem)
