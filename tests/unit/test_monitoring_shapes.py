"""integrations.monitoring on the time series Cloud Monitoring answers with.

The protos are built as ListTimeSeries returns them for revision_metrics' two
queries: ALIGN_DELTA + REDUCE_SUM grouped by revision and response code class gives
DELTA INT64 series, one point per alignment period (newest first, a period without
data has no point); ALIGN_DELTA + REDUCE_PERCENTILE_95 grouped by revision gives
GAUGE DOUBLE series in ms. Grouped series keep only the grouped labels."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from google.api import metric_pb2, monitored_resource_pb2
from google.cloud import monitoring_v3

from integrations.monitoring import (
    REQUEST_COUNT,
    REQUEST_LATENCIES,
    RevisionMetrics,
    _combine,
    combine_revisions,
    read_window,
)

NEW, OLD, OLDER = "api-00016-new", "api-00015-old", "api-00014-older"
END = dt.datetime(2026, 12, 5, 12, 0, 0, tzinfo=dt.UTC)
Kind = metric_pb2.MetricDescriptor.MetricKind
ValueType = metric_pb2.MetricDescriptor.ValueType


def _points(values: list[float | None], period: int, *, double: bool,
            ) -> list[monitoring_v3.Point]:
    """values[k] is the period ending k periods before END; None is a gap (no point)."""
    points = []
    for k, value in enumerate(values):
        if value is None:
            continue
        end = END - dt.timedelta(seconds=k * period)
        typed = (monitoring_v3.TypedValue(double_value=value) if double
                 else monitoring_v3.TypedValue(int64_value=int(value)))
        interval = monitoring_v3.TimeInterval(
            end_time=end, start_time=end if double else end - dt.timedelta(seconds=period))
        points.append(monitoring_v3.Point(interval=interval, value=typed))
    return points


def counts(revision: str, code_class: str, *values: float | None,
           period: int = 60) -> monitoring_v3.TimeSeries:
    return monitoring_v3.TimeSeries(
        metric=metric_pb2.Metric(type=REQUEST_COUNT,
                                 labels={"response_code_class": code_class}),
        resource=monitored_resource_pb2.MonitoredResource(
            type="cloud_run_revision", labels={"revision_name": revision}),
        metric_kind=Kind.DELTA, value_type=ValueType.INT64, unit="1",
        points=_points(list(values), period, double=False))


def p95(revision: str, *values: float | None, period: int = 60) -> monitoring_v3.TimeSeries:
    return monitoring_v3.TimeSeries(
        metric=metric_pb2.Metric(type=REQUEST_LATENCIES),
        resource=monitored_resource_pb2.MonitoredResource(
            type="cloud_run_revision", labels={"revision_name": revision}),
        metric_kind=Kind.GAUGE, value_type=ValueType.DOUBLE, unit="ms",
        points=_points(list(values), period, double=True))


# --- _combine: the two answers into numbers per revision -------------------------------

def test_one_point_per_series_is_the_common_answer() -> None:
    got = _combine([counts(NEW, "2xx", 1150), counts(NEW, "5xx", 50)], [p95(NEW, 212.5)])
    assert got == {NEW: RevisionMetrics(NEW, requests=1200, errors_5xx=50,
                                        p95_latency_ms=212.5)}
    assert got[NEW].error_rate == pytest.approx(50 / 1200)


def test_gaps_sum_the_periods_that_have_points() -> None:
    # Periods 0 and 2 have data, 1 has none (no point at all, not a zero point).
    got = _combine([counts(NEW, "2xx", 600, None, 540), counts(NEW, "5xx", None, None, 6)],
                   [p95(NEW, 180.0, None, 260.0)])[NEW]
    assert (got.requests, got.errors_5xx) == (1146, 6)
    assert got.p95_latency_ms == 260.0  # the worst period bounds the window's p95


def test_several_points_and_revisions_at_once() -> None:
    got = _combine(
        [counts(NEW, "2xx", 10, 20, 30), counts(OLD, "2xx", 100, 100, 100),
         counts(OLD, "5xx", 1, 0, 2)],
        [p95(NEW, 90.0, 95.0, 80.0), p95(OLD, 120.0, 130.0, 125.0)])
    assert got == {NEW: RevisionMetrics(NEW, 60, 0, 95.0),
                   OLD: RevisionMetrics(OLD, 303, 3, 130.0)}
    assert list(got) == sorted(got)


def test_4xx_and_3xx_are_requests_not_errors() -> None:
    got = _combine([counts(NEW, "2xx", 80), counts(NEW, "3xx", 5), counts(NEW, "4xx", 15)],
                   [])[NEW]
    assert (got.requests, got.errors_5xx, got.error_rate) == (100, 0, 0.0)


def test_5xx_only_is_a_rate_of_one() -> None:
    got = _combine([counts(NEW, "5xx", 3, 4)], [p95(NEW, 30000.0)])[NEW]
    assert (got.requests, got.errors_5xx, got.error_rate) == (7, 7, 1.0)
    assert got.p95_latency_ms == 30000.0


def test_zero_requests_has_no_rate_and_no_latency() -> None:
    got = _combine([counts(OLD, "2xx", 0)], [])
    assert got == {OLD: RevisionMetrics(OLD, 0, 0, None)}
    assert got[OLD].error_rate is None  # never 0 %: nothing was served


def test_a_percentile_of_nothing_is_not_a_latency() -> None:
    # An empty period's percentile: 0 ms beside a count of 0, or NaN.
    got = _combine([counts(OLD, "2xx", 0)], [p95(OLD, 0.0)])
    assert got[OLD].p95_latency_ms is None
    got = _combine([counts(NEW, "2xx", 40, 0)], [p95(NEW, math.nan, 150.0)])
    assert got[NEW].p95_latency_ms == 150.0
    assert _combine([], [p95(NEW, math.nan)]) == {}  # nothing at all about NEW


def test_a_revision_that_served_nothing_is_absent() -> None:
    got = _combine([counts(NEW, "2xx", 100)], [p95(NEW, 100.0)])
    assert OLD not in got


def test_a_revision_seen_only_in_latencies() -> None:
    # The two queries are separate reads: one may see a minute the other does not yet.
    got = _combine([counts(NEW, "2xx", 10)], [p95(NEW, 50.0), p95(OLD, 75.0)])
    assert got[OLD] == RevisionMetrics(OLD, 0, 0, 75.0)
    assert got[OLD].error_rate is None


def test_empty_answers_and_series_without_points() -> None:
    assert _combine([], []) == {}
    got = _combine([counts(NEW, "2xx", None, None)], [p95(NEW, None)])
    assert got == {NEW: RevisionMetrics(NEW, 0, 0, None)}


def test_a_double_count_is_read_as_a_number() -> None:
    series = counts(NEW, "2xx")
    series.value_type = ValueType.DOUBLE
    series.points = [monitoring_v3.Point(
        interval=monitoring_v3.TimeInterval(end_time=END),
        value=monitoring_v3.TypedValue(double_value=42.0))]
    assert _combine([series], [])[NEW].requests == 42


# --- the window asked for --------------------------------------------------------------

@pytest.mark.parametrize(("start_offset", "length", "whole_seconds"), [
    (0.0, 60.0, 60),     # on whole seconds: exactly the window
    (0.3, 60.0, 60),     # both ends mid-second: one period of 60 whole seconds
    (0.8, 90.5, 91),     # (12:00:00, 12:01:31]
    (0.25, 150.7, 150),
    (0.5, 299.9, 300),
    (0.0, 300.0, 300),
])
def test_a_window_is_read_on_whole_seconds_as_one_period(
        start_offset: float, length: float, whole_seconds: int) -> None:
    start = END + dt.timedelta(seconds=start_offset)
    end = start + dt.timedelta(seconds=length)
    period, interval = read_window(start, end)
    assert period.seconds == whole_seconds and period.nanos == 0
    last = math.floor(end.timestamp())
    assert interval.end_time.timestamp() == last <= end.timestamp()
    assert interval.start_time.timestamp() == math.floor(start.timestamp())
    assert abs(whole_seconds - length) < 1


def test_a_short_window_is_widened_to_the_minute_before_its_end() -> None:
    start = END + dt.timedelta(seconds=0.4)
    period, interval = read_window(start, start + dt.timedelta(seconds=12.3))
    assert period.seconds == 60
    assert interval.end_time.timestamp() == END.timestamp() + 12
    assert interval.start_time.timestamp() == END.timestamp() + 12 - 60


# --- several revisions as one ----------------------------------------------------------

def test_replaced_revisions_measured_as_one() -> None:
    metrics = {NEW: RevisionMetrics(NEW, 100, 20, 300.0),
               OLD: RevisionMetrics(OLD, 300, 3, 150.0),
               OLDER: RevisionMetrics(OLDER, 100, 2, 400.0)}
    both = combine_revisions(metrics, [OLD, OLDER])
    assert both == RevisionMetrics(f"{OLD}+{OLDER}", 400, 5, 400.0)
    assert both is not None and both.error_rate == pytest.approx(5 / 400)
    # Named twice or with one that served nothing: counted once, the other ignored.
    assert combine_revisions(metrics, [OLD, "api-00001-gone", OLD]) == metrics[OLD]


def test_combined_latency_and_rate_when_some_have_none() -> None:
    metrics = {OLD: RevisionMetrics(OLD, 0, 0, None), OLDER: RevisionMetrics(OLDER, 50, 1, None)}
    got = combine_revisions(metrics, iter([OLDER, OLD]))
    assert got == RevisionMetrics(f"{OLDER}+{OLD}", 50, 1, None)
    quiet = combine_revisions(metrics, [OLD])
    assert quiet is not None and quiet.error_rate is None and quiet.p95_latency_ms is None


def test_combining_revisions_that_served_nothing_is_none() -> None:
    assert combine_revisions({NEW: RevisionMetrics(NEW, 5, 0, 10.0)}, [OLD, OLDER]) is None
    assert combine_revisions({}, []) is None
