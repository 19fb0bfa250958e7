"""The per-revision numbers a gradual rollout is judged by, on the shapes Cloud
Monitoring answers with (gaps, zero requests, 4xx, latency without counts, several
points) and as one measurement of several revisions (what a step replaces); the
scrape path's histogram reset and empty window."""

from __future__ import annotations

import math

from google.api import metric_pb2, monitored_resource_pb2
from google.cloud import monitoring_v3

from bot.measure import _Metrics
from integrations import prom_metrics
from integrations.monitoring import RevisionMetrics, _combine

NEW, OLD, OLDER = "svc-00014-def", "svc-00015-abc", "svc-00013-ghi"


def _series(revision: str, values: list[float | None], *, code: str | None = None,
            double: bool = False) -> monitoring_v3.TimeSeries:
    """One series as ListTimeSeries returns it after ALIGN_DELTA + a reducer: one point
    per alignment period, newest first; None is a period with no point (a gap)."""
    labels = {"response_code_class": code} if code else {}
    points = []
    for value in values:
        if value is None:
            continue
        typed = (monitoring_v3.TypedValue(double_value=value) if double
                 else monitoring_v3.TypedValue(int64_value=int(value)))
        points.append(monitoring_v3.Point(value=typed))
    return monitoring_v3.TimeSeries(
        metric=metric_pb2.Metric(type="run.googleapis.com/request_count", labels=labels),
        resource=monitored_resource_pb2.MonitoredResource(
            type="cloud_run_revision", labels={"revision_name": revision}),
        points=points)


def test_counts_sum_over_points_and_gaps_are_not_zeros() -> None:
    counts = [_series(NEW, [120, None, 80], code="2xx"), _series(NEW, [3, None, 2], code="5xx"),
              _series(NEW, [10], code="4xx")]  # 4xx are requests, not errors
    latencies = [_series(NEW, [180.0, None, 240.0], double=True)]
    got = _combine(counts, latencies)[NEW]
    assert (got.requests, got.errors_5xx) == (215, 5)
    assert got.p95_latency_ms == 240.0  # the worst period speaks
    assert math.isclose(got.error_rate or 0, 5 / 215)


def test_a_revision_with_no_requests_has_no_rate() -> None:
    got = _combine([_series(NEW, [0], code="2xx")], [])
    assert got[NEW] == RevisionMetrics(NEW, 0, 0, None)
    assert got[NEW].error_rate is None  # never 0%: nothing was served


def test_latency_without_counts_and_empty_answers() -> None:
    only_latency = _combine([], [_series(OLD, [95.0], double=True)])
    assert only_latency[OLD] == RevisionMetrics(OLD, 0, 0, 95.0)
    assert _combine([], []) == {}
    no_points = _combine([_series(NEW, [None, None], code="2xx")], [])
    assert no_points[NEW].requests == 0 and no_points[NEW].error_rate is None


def test_only_5xx_is_a_rate_of_one() -> None:
    got = _combine([_series(NEW, [7], code="5xx")], [])[NEW]
    assert (got.requests, got.errors_5xx, got.error_rate) == (7, 7, 1.0)


def test_the_replaced_revisions_measured_as_one() -> None:
    metrics = _Metrics("cloud_monitoring", per_revision={
        NEW: RevisionMetrics(NEW, 100, 20, 300.0),
        OLD: RevisionMetrics(OLD, 300, 3, 150.0),
        OLDER: RevisionMetrics(OLDER, 100, 2, 400.0),
    })
    assert metrics.of([NEW]) == (0.2, 300.0, 100.0)
    rate, p95, requests = metrics.of([OLD, OLDER])
    assert (rate, requests) == (5 / 400, 400.0)
    assert p95 == 400.0  # the worst p95 bounds theirs together from above
    assert metrics.of(["svc-00001-zzz"]) == (None, None, 0.0)  # served nothing


def test_a_scrape_answers_for_the_whole_service_whatever_revisions_are_asked() -> None:
    window = prom_metrics.WindowMetrics(requests=50, error_rate=0.02, p95_latency_ms=120.0)
    metrics = _Metrics("metrics_url", window=window)
    assert metrics.of([NEW]) == metrics.of([OLD, OLDER]) == (0.02, 120.0, 50)
    assert _Metrics("none").of([NEW]) == (None, None, None)


def test_scrapes_across_a_histogram_reset_and_an_empty_window() -> None:
    before = prom_metrics.Scrape(at=0, requests=1000, errors_5xx=10, buckets=(
        (0.1, 900.0), (0.5, 990.0), (math.inf, 1000.0)))
    restarted = prom_metrics.Scrape(at=5, requests=40, errors_5xx=4, buckets=(
        (0.1, 30.0), (0.5, 38.0), (math.inf, 40.0)))
    reset = prom_metrics.window(before, restarted)
    assert (reset.requests, reset.error_rate) == (40, 0.1)  # after is the delta
    assert reset.p95_latency_ms is not None and reset.p95_latency_ms > 100
    idle = prom_metrics.window(before, prom_metrics.Scrape(at=5, requests=1000, errors_5xx=10,
                                                           buckets=before.buckets))
    assert (idle.requests, idle.error_rate, idle.p95_latency_ms) == (0, None, None)
