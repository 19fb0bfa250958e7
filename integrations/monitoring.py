"""Cloud Monitoring: Cloud Run's built-in per-revision request metrics.

The one source that tells revisions apart during a split or right after a
rollback: ``run.googleapis.com/request_count`` and ``request_latencies`` carry
the serving revision as ``resource.labels.revision_name``. Two ListTimeSeries
calls per question, one aligned point per series over the whole window:

- counts: ALIGN_DELTA + REDUCE_SUM grouped by revision and response code class;
- latency: ALIGN_DELTA + REDUCE_PERCENTILE_95 grouped by revision (the p95 of the
  revision's merged latency distribution, in ms).

Cloud Monitoring requires an alignment period of at least 60 s, so a shorter
window is widened to the 60 s ending at ``end``. Transient errors (429, 5xx,
deadlines) are retried with tenacity, the GAPIC retry switched off, as in
integrations.cloud_run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import re
from collections.abc import Awaitable, Callable
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
        """Requests, 5xx and p95 latency per revision of ``service`` over (start, end]."""
        for what, value in (("service", service), ("region", region)):
            if not _NAME.match(value):
                raise GoogleCallError("invalid", f"invalid {what} name {value!r}")
        if start.tzinfo is None or end.tzinfo is None:
            raise GoogleCallError("invalid", "start and end must be timezone-aware")
        if end <= start:
            raise GoogleCallError("invalid", f"empty window: end {end.isoformat()} is not "
                                  f"after start {start.isoformat()}")
        seconds = max(MIN_ALIGNMENT_SECONDS, math.ceil((end - start).total_seconds()))
        period = duration_pb2.Duration(seconds=seconds)
        interval = monitoring_v3.TimeInterval(start_time=start, end_time=end)
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


def _combine(counts: list[monitoring_v3.TimeSeries],
             latencies: list[monitoring_v3.TimeSeries]) -> dict[str, RevisionMetrics]:
    requests: dict[str, int] = {}
    errors: dict[str, int] = {}
    for series in counts:
        revision = series.resource.labels.get("revision_name", "")
        total = sum(int(p.value.int64_value) for p in series.points)
        requests[revision] = requests.get(revision, 0) + total
        if series.metric.labels.get("response_code_class") == "5xx":
            errors[revision] = errors.get(revision, 0) + total
    p95: dict[str, float] = {}
    for series in latencies:
        revision = series.resource.labels.get("revision_name", "")
        if series.points:
            # One point per window; should there be more, the worst one speaks.
            p95[revision] = max(float(p.value.double_value) for p in series.points)
    return {
        revision: RevisionMetrics(revision, requests.get(revision, 0), errors.get(revision, 0),
                                  p95.get(revision))
        for revision in sorted(set(requests) | set(p95))
    }
