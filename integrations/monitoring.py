"""Cloud Monitoring: Cloud Run's built-in per-revision request metrics.

The one source that tells revisions apart during a split or right after a
rollback: ``run.googleapis.com/request_count`` and ``request_latencies`` carry
the serving revision as ``resource.labels.revision_name``. Two ListTimeSeries
calls per question, one aligned point per series over the whole window:

- counts: ALIGN_DELTA + REDUCE_SUM grouped by revision and response code class;
- latency: ALIGN_DELTA + REDUCE_PERCENTILE_95 grouped by revision (the p95 of the
  revision's merged latency distribution, in ms).

The window is read on whole seconds, as one alignment period ending at ``end``
(see ``GoogleCloudMonitoring.revision_metrics``). Transient errors (429, 5xx,
deadlines) are retried with tenacity, the GAPIC retry switched off, as in
integrations.cloud_run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol, TypeVar

from google.cloud import monitoring_v3
from google.protobuf import duration_pb2

from .google_retry import GoogleCallError, RetryPolicy, call_with_retry, classify

T = TypeVar("T")

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
MIN_ALIGNMENT_SECONDS = 60  # Cloud Monitoring refuses shorter alignment periods
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_REVISION = "resource.labels.revision_name"
_CODE_CLASS = "metric.labels.response_code_class"

Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


@dataclasses.dataclass(frozen=True)
class RevisionMetrics:
    revision: str  # short name, e.g. medicalcor-api-00014-def
    requests: int
    errors_5xx: int
    p95_latency_ms: float | None  # None when Monitoring has no latency for the window

    @property
    def error_rate(self) -> float | None:
        """Share of requests answered 5xx; None without requests."""
        return self.errors_5xx / self.requests if self.requests else None


class CloudMonitoring(Protocol):
    async def revision_metrics(
        self, service: str, region: str, start: dt.datetime, end: dt.datetime
    ) -> dict[str, RevisionMetrics]: ...


class GoogleCloudMonitoring:
    """CloudMonitoring over monitoring_v3.MetricServiceAsyncClient."""

    def __init__(self, client: monitoring_v3.MetricServiceAsyncClient, project: str,
                 policy: RetryPolicy | None = None) -> None:
        self._client = client
        self._project = project
        self._policy = policy or RetryPolicy()

    async def revision_metrics(
        self, service: str, region: str, start: dt.datetime, end: dt.datetime
    ) -> dict[str, RevisionMetrics]:
        """Requests, 5xx and p95 latency per revision of ``service`` over (start, end].

        The window, exactly: whole seconds ``(floor(start), floor(end)]``, asked as one
        alignment period ending at ``floor(end)``, so each series has one point (reads
        are ``(start_time, end_time]``; the emulator aligns points backwards from
        ``end_time``, documented in its module). The second in progress at
        ``end`` is left out, the rest of the one holding ``start`` is counted, so the
        length is within a second of ``end - start`` and not biased either way. A window
        shorter than 60 s (the least alignment period) is widened to the 60 s ending at
        ``floor(end)``. The emulator counts each second's requests (its docstring).

        Real Cloud Run samples these metrics every 60 s and they become readable up to
        ~3 min later: a window ending now may lack its last minutes (fewer requests,
        never wrong ones); callers wanting whole numbers end their window that far back.

        Revisions that served nothing in the window are absent; one with a count series
        of 0 is present with ``requests == 0`` (its rate is None, never 0).
        """
        for what, value in (("service", service), ("region", region)):
            if not _NAME.match(value):
                raise GoogleCallError("invalid", f"invalid {what} name {value!r}")
        if start.tzinfo is None or end.tzinfo is None:
            raise GoogleCallError("invalid", "start and end must be timezone-aware")
        if end <= start:
            raise GoogleCallError("invalid", f"empty window: end {end.isoformat()} is not "
                                  f"after start {start.isoformat()}")
        period, interval = read_window(start, end)
        base = (f'resource.type = "cloud_run_revision" AND '
                f'resource.labels.service_name = "{service}" AND '
                f'resource.labels.location = "{region}"')
        counts_request = self._request(
            f'metric.type = "{REQUEST_COUNT}" AND {base}', interval, monitoring_v3.Aggregation(
                alignment_period=period, per_series_aligner=Aligner.ALIGN_DELTA,
                cross_series_reducer=Reducer.REDUCE_SUM, group_by_fields=[_REVISION, _CODE_CLASS]))
        latency_request = self._request(
            f'metric.type = "{REQUEST_LATENCIES}" AND {base}', interval, monitoring_v3.Aggregation(
                alignment_period=period, per_series_aligner=Aligner.ALIGN_DELTA,
                cross_series_reducer=Reducer.REDUCE_PERCENTILE_95, group_by_fields=[_REVISION]))
        try:
            # Both at once; the first failure cancels the other.
            async with asyncio.TaskGroup() as group:
                counts = group.create_task(self._call(lambda: self._list(counts_request)))
                latencies = group.create_task(self._call(lambda: self._list(latency_request)))
        except ExceptionGroup as failed:
            raise classify(failed.exceptions[0], "Cloud Monitoring") from failed.exceptions[0]
        return _combine(counts.result(), latencies.result())

    def _request(self, filter_: str, interval: monitoring_v3.TimeInterval,
                 aggregation: monitoring_v3.Aggregation) -> monitoring_v3.ListTimeSeriesRequest:
        return monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{self._project}", filter=filter_, interval=interval,
            aggregation=aggregation,
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL)

    async def _list(self, request: monitoring_v3.ListTimeSeriesRequest,
                    ) -> list[monitoring_v3.TimeSeries]:
        pager = await self._client.list_time_series(request=request, retry=None)
        return [series async for series in pager]

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retry(self._policy, fn, "Cloud Monitoring")


def read_window(start: dt.datetime, end: dt.datetime,
                ) -> tuple[duration_pb2.Duration, monitoring_v3.TimeInterval]:
    """The alignment period and interval that read (start, end] on whole seconds."""
    last = math.floor(end.timestamp())
    seconds = max(MIN_ALIGNMENT_SECONDS, last - math.floor(start.timestamp()))
    end_s = dt.datetime.fromtimestamp(last, dt.UTC)
    interval = monitoring_v3.TimeInterval(
        start_time=end_s - dt.timedelta(seconds=seconds), end_time=end_s)
    return duration_pb2.Duration(seconds=seconds), interval


def combine_revisions(metrics: Mapping[str, RevisionMetrics],
                      revisions: Iterable[str]) -> RevisionMetrics | None:
    """Several revisions measured as one (e.g. those a rollout step replaces).

    Requests and 5xx are summed; the p95 is the worst of theirs, an upper bound of
    the merged traffic's true p95 (the percentiles of parts do not add up to the
    whole's). ``revision`` names the merged ones joined by "+", in the order asked,
    each once. None when none of them is in ``metrics`` (nothing served).
    """
    picked = [metrics[name] for name in dict.fromkeys(revisions) if name in metrics]
    if not picked:
        return None
    latencies = [m.p95_latency_ms for m in picked if m.p95_latency_ms is not None]
    return RevisionMetrics(
        revision="+".join(m.revision for m in picked),
        requests=sum(m.requests for m in picked),
        errors_5xx=sum(m.errors_5xx for m in picked),
        p95_latency_ms=max(latencies) if latencies else None)


def _number(value: monitoring_v3.TypedValue) -> float:
    """A point's value whichever numeric field is set (INT64 counts, DOUBLE percentiles)."""
    field = monitoring_v3.TypedValue.pb(value).WhichOneof("value")
    if field == "int64_value":
        return float(value.int64_value)
    if field == "double_value":
        return float(value.double_value)
    return math.nan  # a distribution or nothing: not a number this module asked for


def _combine(counts: list[monitoring_v3.TimeSeries],
             latencies: list[monitoring_v3.TimeSeries]) -> dict[str, RevisionMetrics]:
    requests: dict[str, int] = {}
    errors: dict[str, int] = {}
    for series in counts:
        revision = series.resource.labels.get("revision_name", "")
        values = [_number(p.value) for p in series.points]
        total = int(sum(v for v in values if math.isfinite(v) and v > 0))
        requests[revision] = requests.get(revision, 0) + total
        if series.metric.labels.get("response_code_class") == "5xx":
            errors[revision] = errors.get(revision, 0) + total
    p95: dict[str, float] = {}
    for series in latencies:
        revision = series.resource.labels.get("revision_name", "")
        # A period without requests may carry NaN (no percentile of nothing): not data.
        values = [v for v in (_number(p.value) for p in series.points)
                  if math.isfinite(v) and v >= 0]
        if values:
            # One point per window; should there be more, the worst one speaks.
            p95[revision] = max(*values, p95.get(revision, 0.0))
    return {
        revision: RevisionMetrics(revision, requests.get(revision, 0), errors.get(revision, 0),
                                  _latency(requests.get(revision, 0), p95.get(revision)))
        for revision in sorted(set(requests) | set(p95))
    }


def _latency(requests: int, p95: float | None) -> float | None:
    """0 ms with no requests is the percentile of an empty distribution: no data."""
    return None if p95 == 0.0 and requests == 0 else p95
