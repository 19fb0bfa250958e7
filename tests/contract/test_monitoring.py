"""Contract tests: integrations.monitoring over the real MetricServiceAsyncClient
against the Google emulator, fed by the target app's simulated traffic.

The target app runs on a fake clock (no HTTP server needed: ``advance()`` replays
traffic into the shared World), so each window holds exactly 20 req/s. Only
127.0.0.1 is used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3

from integrations.cloud_run import RetryPolicy
from integrations.emulators.google import GoogleEmulator
from integrations.emulators.google.monitoring import LIST_TIME_SERIES
from integrations.emulators.target_app import TargetApp
from integrations.emulators.world import EmuTrafficTarget, RequestMetrics, World, default_world
from integrations.gcp import GoogleClients, make_google_clients
from integrations.google_retry import GoogleCallError
from integrations.monitoring import GoogleCloudMonitoring, RevisionMetrics
from tests.contract.conftest import FakeClock

API = "medicalcor-api"
BAD = "medicalcor-api-00015-abc"
GOOD = "medicalcor-api-00014-def"
REGION = "europe-west3"
FAST = RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.02, call_timeout=2.0)


@dataclasses.dataclass
class Rig:
    world: World
    app: TargetApp
    emulator: GoogleEmulator
    clients: GoogleClients
    monitoring: GoogleCloudMonitoring


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    world = default_world(bad_latest=True)
    app = TargetApp(world, clock=FakeClock(), seed=11)
    async with GoogleEmulator(world, operation_delay=0.0) as emulator:
        clients = make_google_clients(emulator.address)
        try:
            yield Rig(world, app, emulator, clients,
                      GoogleCloudMonitoring(clients.monitoring, world.project, FAST))
        finally:
            await clients.close()


def route(world: World, **percents: int) -> None:
    world.services[API].traffic = [EmuTrafficTarget(revision=rev, percent=pct)
                                   for rev, pct in percents.items()]


async def window(rig: Rig, seconds: float) -> dict[str, RevisionMetrics]:
    start = rig.app.wall_time()
    rig.app.advance(seconds)
    return await rig.monitoring.revision_metrics(API, REGION, start, rig.app.wall_time())


async def test_bad_revision_then_rollback_tells_revisions_apart(rig: Rig) -> None:
    t0 = rig.app.wall_time()
    rig.app.advance(60)
    t1 = rig.app.wall_time()
    route(rig.world, **{GOOD: 100})
    rig.app.advance(60)
    t2 = rig.app.wall_time()

    before = await rig.monitoring.revision_metrics(API, REGION, t0, t1)
    assert list(before) == [BAD]
    bad = before[BAD]
    assert bad.requests == 1200  # 60 s at 20 req/s, none leaked across the flip
    assert bad.error_rate is not None and 0.30 < bad.error_rate < 0.40
    assert bad.p95_latency_ms is not None and 2000 < bad.p95_latency_ms < 2900

    after = await rig.monitoring.revision_metrics(API, REGION, t1, t2)
    assert list(after) == [GOOD]
    good = after[GOOD]
    assert good.requests == 1200
    assert good.error_rate is not None and good.error_rate < 0.01
    assert good.p95_latency_ms is not None and 100 < good.p95_latency_ms < 145

    both = await rig.monitoring.revision_metrics(API, REGION, t0, t2)
    assert {r: m.requests for r, m in both.items()} == {BAD: 1200, GOOD: 1200}


async def test_split_traffic_shows_both_revisions(rig: Rig) -> None:
    route(rig.world, **{GOOD: 50, BAD: 50})
    metrics = await window(rig, 60)
    assert set(metrics) == {BAD, GOOD}
    assert metrics[BAD].requests + metrics[GOOD].requests == 1200
    assert 500 < metrics[BAD].requests < 700
    bad_rate, good_rate = metrics[BAD].error_rate, metrics[GOOD].error_rate
    assert bad_rate is not None and good_rate is not None and bad_rate > 0.25 > good_rate
    assert (metrics[BAD].p95_latency_ms or 0) > 10 * (metrics[GOOD].p95_latency_ms or 0)
    # The other service's traffic is never mixed in.
    assert all(r.startswith(API) for r in metrics)


async def test_no_traffic_is_an_empty_answer(rig: Rig) -> None:
    route(rig.world)  # nothing serving
    assert await window(rig, 60) == {}
    empty = RevisionMetrics("r", requests=0, errors_5xx=0, p95_latency_ms=None)
    assert empty.error_rate is None


@pytest.mark.parametrize(("lead_in", "seconds"), [
    (0.3, 60.0), (0.8, 90.5), (0.25, 150.7), (0.5, 299.9), (0.0, 300.0)])
async def test_windows_off_the_second_count_whole_seconds(
        rig: Rig, lead_in: float, seconds: float) -> None:
    rig.app.advance(lead_in)
    start = rig.app.wall_time()
    rig.app.advance(seconds)
    end = rig.app.wall_time()
    metrics = await rig.monitoring.revision_metrics(API, REGION, start, end)
    whole = math.floor(end.timestamp()) - math.floor(start.timestamp())
    # 20 req/s over the whole seconds (floor(start), floor(end)]; a request landing on a
    # second's edge may fall either side. Before, a window ending mid-second lost a second.
    assert abs(metrics[BAD].requests - 20 * whole) <= 1
    assert abs(metrics[BAD].requests - 20 * seconds) <= 20


async def test_transient_errors_are_retried(rig: Rig) -> None:
    rig.emulator.faults.inject(LIST_TIME_SERIES, grpc.StatusCode.UNAVAILABLE, count=2)
    metrics = await window(rig, 60)
    assert metrics[BAD].requests == 1200
    assert len(rig.emulator.calls_to(LIST_TIME_SERIES)) == 4  # 2 failed + 2 answered


async def test_refusals_are_not_retried(rig: Rig) -> None:
    rig.emulator.faults.inject(LIST_TIME_SERIES, grpc.StatusCode.INVALID_ARGUMENT,
                               count=-1, message="bad query")
    with pytest.raises(GoogleCallError) as caught:
        await window(rig, 60)
    assert not caught.value.transient and "bad query" in caught.value.message
    # At most one call per query (the first refusal cancels the other): no retry.
    assert 1 <= len(rig.emulator.calls_to(LIST_TIME_SERIES)) <= 2


async def test_client_rejects_bad_input(rig: Rig) -> None:
    t = rig.app.wall_time()
    with pytest.raises(GoogleCallError, match="empty window"):
        await rig.monitoring.revision_metrics(API, REGION, t, t)
    with pytest.raises(GoogleCallError, match="invalid service"):
        await rig.monitoring.revision_metrics('x" OR 1', REGION, t, t)


def _request(rig: Rig, filter_: str, start_s: float, end_s: float,
             aggregation: monitoring_v3.Aggregation | None = None,
             ) -> monitoring_v3.ListTimeSeriesRequest:
    start, end = rig.app.wall_time(1000.0 + start_s), rig.app.wall_time(1000.0 + end_s)
    return monitoring_v3.ListTimeSeriesRequest(
        name=f"projects/{rig.world.project}", filter=filter_,
        interval=monitoring_v3.TimeInterval(start_time=start, end_time=end),
        aggregation=aggregation)


COUNT = (f'metric.type = "run.googleapis.com/request_count" AND '
         f'resource.labels.service_name = "{API}"')
LATENCY = COUNT.replace("request_count", "request_latencies")
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


@pytest.mark.parametrize(("filter_", "aggregation", "names"), [
    (COUNT.replace(" AND ", " OR "), None, "only AND"),
    ('metric.type = "run.googleapis.com/container/cpu/utilizations"', None, "metric.type"),
    (COUNT + ' AND resource.labels.zone = "a"', None, "resource.labels.zone"),
    ('resource.labels.service_name = "x"', None, "must specify metric.type"),
    (COUNT, monitoring_v3.Aggregation(alignment_period={"seconds": 60},
                                      per_series_aligner=Aligner.ALIGN_RATE), "ALIGN_RATE"),
    (COUNT, monitoring_v3.Aggregation(alignment_period={"seconds": 30},
                                      per_series_aligner=Aligner.ALIGN_DELTA), "at least 60"),
    (COUNT, monitoring_v3.Aggregation(
        alignment_period={"seconds": 60}, per_series_aligner=Aligner.ALIGN_DELTA,
        cross_series_reducer=Reducer.REDUCE_PERCENTILE_95), "REDUCE_PERCENTILE_95"),
    (COUNT, monitoring_v3.Aggregation(
        alignment_period={"seconds": 60}, per_series_aligner=Aligner.ALIGN_DELTA,
        cross_series_reducer=Reducer.REDUCE_SUM, group_by_fields=["metric.labels.route"]),
     "metric.labels.route"),
])
async def test_unsupported_queries_name_the_part(
        rig: Rig, filter_: str, aggregation: monitoring_v3.Aggregation | None,
        names: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match=names):
        await rig.clients.monitoring.list_time_series(
            request=_request(rig, filter_, 0, 60, aggregation), retry=None)


async def test_raw_and_per_series_views(rig: Rig) -> None:
    rig.app.advance(10)
    raw = [ts async for ts in await rig.clients.monitoring.list_time_series(
        request=_request(rig, LATENCY, 0, 5), retry=None)]
    assert {ts.metric.labels["response_code_class"] for ts in raw} == {"2xx", "5xx"}
    assert {ts.resource.labels["revision_name"] for ts in raw} == {BAD}
    assert all(ts.resource.labels["location"] == REGION for ts in raw)
    points = [p for ts in raw for p in ts.points]
    assert sum(p.value.distribution_value.count for p in points) == 100  # 5 s at 20 req/s
    assert all(len(ts.points) == 5 and ts.unit == "ms" for ts in raw)
    newest_first = [p.interval.end_time for p in raw[0].points]
    assert newest_first == sorted(newest_first, reverse=True)

    p95 = [ts async for ts in await rig.clients.monitoring.list_time_series(
        request=_request(rig, LATENCY + ' AND metric.labels.response_code_class = "2xx"', 0, 10,
                         monitoring_v3.Aggregation(
                             alignment_period={"seconds": 60},
                             per_series_aligner=Aligner.ALIGN_PERCENTILE_95)), retry=None)]
    assert len(p95) == 1 and len(p95[0].points) == 1
    assert 1500 < p95[0].points[0].value.double_value < 3500


def test_request_metrics_memory_is_bounded() -> None:
    metrics = RequestMetrics(retention_seconds=120)
    for second in range(1, 1000):
        metrics.record(API, BAD, second - 0.5, "2xx", 100.0)
        metrics.prune()
    assert len(metrics) <= 120 + 60
    assert min(metrics.series(API)[(BAD, "2xx")]) > 999 - 120 - 60
