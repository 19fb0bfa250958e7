"""Cloud Monitoring v3: google.monitoring.v3.MetricService/ListTimeSeries over the
World's request metrics (Cloud Run's built-in per-revision metrics).

Supported, and nothing else (anything else is INVALID_ARGUMENT naming the part):

- filter: ``a = "v" AND b = "v" ...`` with ``metric.type`` (required) one of
  ``run.googleapis.com/request_count`` (DELTA INT64, unit "1") or
  ``run.googleapis.com/request_latencies`` (DELTA DISTRIBUTION, unit "ms");
  ``resource.type = "cloud_run_revision"``; ``resource.labels.{service_name,
  revision_name, location, project_id}``; ``metric.labels.response_code_class``.
- no aggregation: raw per-second points, (s - 1, s], newest first; latencies as
  Distributions with exponential buckets (world.LATENCY_*).
- aggregation: ``alignment_period`` >= 60 s, whole seconds; points end at
  ``interval.end_time``, ``end - period``, ... while after ``start_time``, each
  covering (end - period, end] (so a period longer than the interval reads before
  its start). Aligners: ALIGN_DELTA (counts, latencies) and ALIGN_PERCENTILE_95
  (latencies, DOUBLE ms, no reducer). Reducers after ALIGN_DELTA: REDUCE_SUM
  (counts; latencies: merged Distribution) and REDUCE_PERCENTILE_95 (latencies:
  DOUBLE ms of the merged distribution), grouped by ``resource.labels.*`` /
  ``metric.labels.response_code_class``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Literal

from google.api import distribution_pb2, metric_pb2, monitored_resource_pb2
from google.cloud import monitoring_v3

from ..world import (
    LATENCY_FINITE_BUCKETS,
    LATENCY_GROWTH,
    LATENCY_SCALE_MS,
    RequestStats,
    World,
)
from .common import invalid, not_found, paginate

METRIC_SERVICE = "google.monitoring.v3.MetricService"
LIST_TIME_SERIES = f"{METRIC_SERVICE}/ListTimeSeries"

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
RESOURCE_TYPE = "cloud_run_revision"
RESOURCE_LABELS = ("service_name", "revision_name", "location", "project_id")
METRIC_LABELS = ("response_code_class",)

Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer
Kind = metric_pb2.MetricDescriptor.MetricKind
ValueType = metric_pb2.MetricDescriptor.ValueType
_TERM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*"([^"\\]*)"\s*')
_AND = re.compile(r"AND\b")
_MAX_PAGE = 100_000
_Output = Literal["int", "dist", "double"]


@dataclasses.dataclass(frozen=True)
class TimeSeriesFilter:
    metric_type: str
    resource: dict[str, str]  # resource label -> required value
    metric: dict[str, str]  # metric label -> required value


def parse_filter(text: str) -> TimeSeriesFilter:
    """The ``key = "value" AND ...`` subset; raises EmuError naming what is unsupported."""
    terms: dict[str, str] = {}
    pos, text = 0, text.strip()
    while True:
        match = _TERM.match(text, pos)
        if match is None:
            raise invalid(f"Unsupported filter at {text[pos:pos + 40]!r}: the emulator takes "
                          'only key = "value" terms joined by AND')
        key, value = match.group(1), match.group(2)
        if key in terms:
            raise invalid(f"filter names {key} twice")
        terms[key] = value
        pos = match.end()
        if pos == len(text):
            break
        joined = _AND.match(text, pos)
        if joined is None:
            raise invalid(f"Unsupported filter at {text[pos:pos + 40]!r}: only AND joins terms")
        pos = joined.end()
    metric_type = terms.pop("metric.type", "")
    if metric_type not in (REQUEST_COUNT, REQUEST_LATENCIES):
        raise invalid(f"filter metric.type {metric_type!r} is not supported (use "
                      f"{REQUEST_COUNT!r} or {REQUEST_LATENCIES!r})" if metric_type
                      else "filter must specify metric.type")
    resource_type = terms.pop("resource.type", RESOURCE_TYPE)
    if resource_type != RESOURCE_TYPE:
        raise invalid(f"filter resource.type {resource_type!r} is not supported "
                      f"(use {RESOURCE_TYPE!r})")
    resource: dict[str, str] = {}
    metric: dict[str, str] = {}
    for key, value in terms.items():
        group, _, label = key.rpartition(".")
        if group == "resource.labels" and label in RESOURCE_LABELS:
            resource[label] = value
        elif group == "metric.labels" and label in METRIC_LABELS:
            metric[label] = value
        else:
            raise invalid(f"filter term {key} is not supported by the emulator")
    return TimeSeriesFilter(metric_type, resource, metric)


def _merge(points: dict[float, RequestStats], at: float, other: RequestStats) -> None:
    """Add ``other`` (a count and latency histogram) into the point ending at ``at``."""
    mine = points.get(at)
    if mine is None:
        mine = points[at] = RequestStats()
    mine.count += other.count
    mine.latency_sum_ms += other.latency_sum_ms
    mine.latency_sum_sq_ms += other.latency_sum_sq_ms
    for index, n in other.latency_buckets.items():
        mine.latency_buckets[index] = mine.latency_buckets.get(index, 0) + n


def percentile_ms(stats: RequestStats, q: float) -> float:
    """The q-quantile of a histogram, interpolated geometrically inside its bucket."""
    if stats.count == 0:
        return 0.0
    rank, seen = q * stats.count, 0
    for index in sorted(stats.latency_buckets):
        n = stats.latency_buckets[index]
        if seen + n >= rank:
            fraction = (rank - seen) / n
            if index == 0:
                return LATENCY_SCALE_MS * fraction
            lower = LATENCY_SCALE_MS * LATENCY_GROWTH ** (index - 1)
            if index > LATENCY_FINITE_BUCKETS:
                return lower
            return float(lower * LATENCY_GROWTH ** fraction)
        seen += n
    return LATENCY_SCALE_MS * LATENCY_GROWTH ** LATENCY_FINITE_BUCKETS


def distribution(stats: RequestStats) -> distribution_pb2.Distribution:
    n = stats.count
    mean = stats.latency_sum_ms / n if n else 0.0
    ssd = max(0.0, stats.latency_sum_sq_ms - n * mean * mean)
    top = max(stats.latency_buckets, default=-1)
    options = distribution_pb2.Distribution.BucketOptions(
        exponential_buckets=distribution_pb2.Distribution.BucketOptions.Exponential(
            num_finite_buckets=LATENCY_FINITE_BUCKETS, growth_factor=LATENCY_GROWTH,
            scale=LATENCY_SCALE_MS))
    return distribution_pb2.Distribution(
        count=n, mean=mean, sum_of_squared_deviation=ssd, bucket_options=options,
        # Trailing zero buckets may be omitted.
        bucket_counts=[stats.latency_buckets.get(i, 0) for i in range(top + 1)])


@dataclasses.dataclass
class _Series:
    resource: dict[str, str]
    metric: dict[str, str]
    points: dict[float, RequestStats]  # point end (unix seconds) -> value


class MonitoringApi:
    def __init__(self, world: World) -> None:
        self.world = world

    def list_time_series(self, request: monitoring_v3.ListTimeSeriesRequest,
                         ) -> monitoring_v3.ListTimeSeriesResponse:
        self._check_name(request.name)
        flt = parse_filter(request.filter)
        start, end = self._interval(request)
        if request.secondary_aggregation.per_series_aligner or \
                request.secondary_aggregation.cross_series_reducer:
            raise invalid("secondary_aggregation is not supported by the emulator")
        if request.order_by:
            raise invalid("order_by is unsupported: must be left blank")
        agg = request.aggregation
        aligner, reducer = Aligner(agg.per_series_aligner), Reducer(agg.cross_series_reducer)
        output = self._check_aggregation(flt.metric_type, aligner, reducer)
        raw = self._select(flt)
        if aligner == Aligner.ALIGN_NONE:
            period = 1.0
            series = [_Series(r, m, {float(s): v for s, v in secs.items()
                                     if start <= s - 1 and s <= end})
                      for r, m, secs in raw]
        else:
            period = self._period(agg.alignment_period)
            series = [self._align(r, m, secs, start, end, period) for r, m, secs in raw]
        if reducer != Reducer.REDUCE_NONE:
            series = self._reduce(series, list(agg.group_by_fields))
        series = [s for s in series if s.points]
        series.sort(key=lambda s: (sorted(s.resource.items()), sorted(s.metric.items())))
        headers_only = request.view == monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.HEADERS
        page, token = paginate(series, request.page_size, request.page_token,
                               default_size=_MAX_PAGE, max_size=_MAX_PAGE)
        return monitoring_v3.ListTimeSeriesResponse(
            time_series=[self._proto(flt.metric_type, s, output, period, headers_only)
                         for s in page],
            next_page_token=token, unit="ms" if flt.metric_type == REQUEST_LATENCIES else "1")

    # --- request checks ------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        parts = name.split("/")
        if len(parts) != 2 or parts[0] != "projects":
            raise invalid(f"name {name!r} is not supported by the emulator "
                          "(use projects/{project})")
        if parts[1] != self.world.project:
            raise not_found(f"Project '{parts[1]}' not found "
                            f"(this emulator serves project '{self.world.project}').")

    @staticmethod
    def _interval(request: monitoring_v3.ListTimeSeriesRequest) -> tuple[float, float]:
        end_time = request.interval.end_time
        if end_time is None:
            raise invalid("interval.end_time is required")
        start_time = request.interval.start_time or end_time
        start, end = start_time.timestamp(), end_time.timestamp()
        if start > end:
            raise invalid("interval.start_time must not be after interval.end_time")
        return start, end

    @staticmethod
    def _period(period: dt.timedelta) -> float:
        seconds = period.total_seconds()
        if seconds < 60 or seconds != int(seconds):
            raise invalid(f"aggregation.alignment_period must be whole seconds and at least "
                          f"60 s, got {seconds:g} s")
        return seconds

    @staticmethod
    def _check_aggregation(metric: str, aligner: Aligner, reducer: Reducer) -> _Output:
        """Validate the combination; return the output: "int", "dist" or "double"."""
        counts = metric == REQUEST_COUNT
        if aligner == Aligner.ALIGN_NONE:
            if reducer != Reducer.REDUCE_NONE:
                raise invalid(f"aggregation.cross_series_reducer {reducer.name} needs a "
                              "per_series_aligner other than ALIGN_NONE")
            return "int" if counts else "dist"
        if aligner == Aligner.ALIGN_DELTA:
            if reducer == Reducer.REDUCE_NONE or reducer == Reducer.REDUCE_SUM:
                return "int" if counts else "dist"
            if reducer == Reducer.REDUCE_PERCENTILE_95 and not counts:
                return "double"
            raise invalid(f"aggregation.cross_series_reducer {reducer.name} is not supported "
                          f"for {metric} by the emulator (use REDUCE_SUM"
                          f"{'' if counts else ' or REDUCE_PERCENTILE_95'})")
        if aligner == Aligner.ALIGN_PERCENTILE_95 and not counts:
            if reducer != Reducer.REDUCE_NONE:
                raise invalid(f"aggregation.cross_series_reducer {reducer.name} after "
                              "ALIGN_PERCENTILE_95 is not supported by the emulator "
                              "(use ALIGN_DELTA with REDUCE_PERCENTILE_95)")
            return "double"
        raise invalid(f"aggregation.per_series_aligner {aligner.name} is not supported for "
                      f"{metric} by the emulator (use ALIGN_DELTA"
                      f"{'' if counts else ' or ALIGN_PERCENTILE_95'})")

    # --- data ----------------------------------------------------------------------
    def _select(self, flt: TimeSeriesFilter,
                ) -> list[tuple[dict[str, str], dict[str, str], dict[int, RequestStats]]]:
        world, metrics = self.world, self.world.request_metrics
        out = []
        for service in metrics.services():
            for (revision, code_class), seconds in metrics.series(service).items():
                resource = {"service_name": service, "revision_name": revision,
                            "location": world.region, "project_id": world.project}
                metric = {"response_code_class": code_class}
                if all(resource.get(k) == v for k, v in flt.resource.items()) and \
                        all(metric.get(k) == v for k, v in flt.metric.items()):
                    out.append((resource, metric, seconds))
        return out

    @staticmethod
    def _align(resource: dict[str, str], metric: dict[str, str],
               seconds: dict[int, RequestStats], start: float, end: float,
               period: float) -> _Series:
        points: dict[float, RequestStats] = {}
        for second, stats in seconds.items():
            # The point (end - k*period - period, end - k*period] holding this second.
            k = math.floor((end - second) / period)
            if k < 0 or second - 1 < end - (k + 1) * period:
                continue  # after the interval, or straddling two periods
            point_end = end - k * period
            if point_end <= start and point_end != end:
                continue
            _merge(points, point_end, stats)
        return _Series(resource, metric, points)

    @staticmethod
    def _reduce(series: Iterable[_Series], group_by: list[str]) -> list[_Series]:
        keys: list[tuple[str, str]] = []
        for field in group_by:
            group, _, label = field.rpartition(".")
            if field == "resource.type":
                continue
            if not ((group == "resource.labels" and label in RESOURCE_LABELS)
                    or (group == "metric.labels" and label in METRIC_LABELS)):
                raise invalid(f"aggregation.group_by_fields {field!r} is not supported "
                              "by the emulator")
            keys.append((group, label))
        groups: dict[tuple[str, ...], _Series] = {}
        for s in series:
            key = tuple((s.resource if g == "resource.labels" else s.metric)[label]
                        for g, label in keys)
            out = groups.get(key)
            if out is None:
                out = groups[key] = _Series(
                    {label: v for (g, label), v in zip(keys, key, strict=True)
                     if g == "resource.labels"},
                    {label: v for (g, label), v in zip(keys, key, strict=True)
                     if g == "metric.labels"}, {})
            for point_end, value in s.points.items():
                _merge(out.points, point_end, value)
        return list(groups.values())

    # --- output --------------------------------------------------------------------
    @staticmethod
    def _proto(metric_type: str, s: _Series, output: _Output, period: float,
               headers_only: bool) -> monitoring_v3.TimeSeries:
        kinds = {"int": (Kind.DELTA, ValueType.INT64),
                 "dist": (Kind.DELTA, ValueType.DISTRIBUTION),
                 "double": (Kind.GAUGE, ValueType.DOUBLE)}
        kind, value_type = kinds[output]
        points = []
        for point_end in ([] if headers_only else sorted(s.points, reverse=True)):
            stats = s.points[point_end]
            if output == "int":
                value = monitoring_v3.TypedValue(int64_value=stats.count)
            elif output == "dist":
                value = monitoring_v3.TypedValue(distribution_value=distribution(stats))
            else:
                value = monitoring_v3.TypedValue(double_value=percentile_ms(stats, 0.95))
            end = dt.datetime.fromtimestamp(point_end, dt.UTC)
            interval = monitoring_v3.TimeInterval(
                end_time=end,
                start_time=end - dt.timedelta(seconds=period) if kind == Kind.DELTA else end)
            points.append(monitoring_v3.Point(interval=interval, value=value))
        return monitoring_v3.TimeSeries(
            metric=metric_pb2.Metric(type=metric_type, labels=s.metric),
            resource=monitored_resource_pb2.MonitoredResource(
                type=RESOURCE_TYPE, labels=s.resource),
            metric_kind=kind, value_type=value_type, points=points,
            unit="ms" if metric_type == REQUEST_LATENCIES else "1")
