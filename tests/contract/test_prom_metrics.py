"""integrations.prom_metrics against the target app's real /metrics, and window()
on synthetic scrapes. All traffic stays on 127.0.0.1."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from integrations.emulators.target_app import TargetApp
from integrations.emulators.world import EmuTrafficTarget, World, default_world
from integrations.prom_metrics import (
    MetricsScrapeError,
    Scrape,
    WindowMetrics,
    histogram_quantile,
    measure,
    parse,
    scrape,
    window,
)
from tests.contract.conftest import FakeClock

API = "medicalcor-api"
GOOD = "medicalcor-api-00014-def"
INF = math.inf


@pytest_asyncio.fixture
async def world() -> World:
    return default_world(bad_latest=True)


@pytest_asyncio.fixture
async def target(world: World) -> AsyncIterator[TargetApp]:
    app = TargetApp(world, clock=FakeClock(), seed=11)
    await app.start()
    yield app
    await app.stop()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def metrics_url(target: TargetApp) -> str:
    return f"{target.service_url(API)}/metrics"


# --- against the target app -------------------------------------------------------

async def test_a_rollback_shows_in_the_window(
        target: TargetApp, world: World, session: aiohttp.ClientSession) -> None:
    url = metrics_url(target)

    async def advance(seconds: float) -> None:  # simulated time instead of sleeping
        target.advance(seconds)

    bad = await measure(session, url, interval=120, timeout=5, sleep=advance)
    assert bad.requests == 20 * 120
    assert bad.error_rate is not None and 0.3 < bad.error_rate < 0.4, bad
    # log-normal with p95 2.4 s, interpolated inside the 1 s..2.5 s bucket
    assert bad.p95_latency_ms is not None and 2200 < bad.p95_latency_ms <= 2500, bad

    world.services[API].traffic = [EmuTrafficTarget(revision=GOOD, percent=100)]
    before = await scrape(session, url, timeout=5)
    target.advance(120)
    after = await scrape(session, url, timeout=5)
    good = window(before, after)
    assert good.requests == 20 * 120
    assert good.error_rate is not None and good.error_rate < 0.005, good
    # p95 120 ms; the 100..250 ms bucket's interpolation reads ~175 ms
    assert good.p95_latency_ms is not None and 100 < good.p95_latency_ms < 250, good
    assert after.at >= before.at
    assert after.requests - before.requests == 20 * 120


async def test_scrape_sums_series(target: TargetApp, session: aiohttp.ClientSession) -> None:
    target.advance(10)
    got = await scrape(session, metrics_url(target), timeout=5)
    assert got.requests == 200
    assert 0 < got.errors_5xx < got.requests
    assert got.buckets[-1] == (INF, 200)
    assert [le for le, _ in got.buckets] == [
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, INF]


async def test_unknown_service_is_a_non_200_error(
        target: TargetApp, session: aiohttp.ClientSession) -> None:
    with pytest.raises(MetricsScrapeError, match="answered 404") as info:
        await scrape(session, f"{target.url}/no-such-service/metrics", timeout=5)
    assert not info.value.transient


# --- failures of a misbehaving endpoint ---------------------------------------------

@pytest_asyncio.fixture
async def odd_server() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if kind == "error":
            return web.Response(status=503, text="overloaded")
        if kind == "garbage":
            return web.Response(text="http_requests_total{status=\"500\" 12\n")
        if kind == "nocounter":
            return web.Response(text="# TYPE up gauge\nup 1\n")
        if kind == "huge":
            return web.Response(body=b"# " + b"x" * (4 * 1024 * 1024 + 10) + b"\n")
        if kind == "custom":
            return web.Response(text=(
                "# TYPE requests_total counter\n"
                'requests_total{status="5xx",path="/a"} 3\n'
                'requests_total{status="200",path="/a"} 7\n'
                'requests_total{status="503",path="/b"} 1\n'
            ))
        return web.Response(status=404)

    app = web.Application()
    app.add_routes([web.get("/{kind}", handle)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(("kind", "match", "transient"), [
    ("error", "answered 503", True),
    ("garbage", "not Prometheus text format", False),
    ("nocounter", "no http_requests_total counter", False),
    ("huge", "larger than 4 MiB", False),
])
async def test_bad_endpoints_raise_clear_errors(
        odd_server: str, session: aiohttp.ClientSession, kind: str, match: str,
        transient: bool) -> None:
    with pytest.raises(MetricsScrapeError, match=match) as info:
        await scrape(session, f"{odd_server}/{kind}", timeout=5)
    assert info.value.transient is transient


async def test_other_names_and_5xx_labels(
        odd_server: str, session: aiohttp.ClientSession) -> None:
    got = await scrape(session, f"{odd_server}/custom", timeout=5, counter="requests_total")
    assert (got.requests, got.errors_5xx, got.buckets) == (11, 4, ())


async def test_unreachable(session: aiohttp.ClientSession) -> None:
    # Bind, learn a free port, close it: nothing listens there now.
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    with pytest.raises(MetricsScrapeError, match="connection refused") as info:
        await scrape(session, f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert info.value.transient


# --- window() on synthetic scrapes --------------------------------------------------

def snap(requests: float, errors: float, *buckets: tuple[float, float]) -> Scrape:
    return Scrape(at=0.0, requests=requests, errors_5xx=errors, buckets=tuple(buckets))


def test_interpolation_inside_the_bucket() -> None:
    before = snap(0, 0, (0.1, 0), (0.5, 0), (1.0, 0), (INF, 0))
    # 100 requests: 50 under 100 ms, 40 in 100..500 ms, 10 in 0.5..1 s.
    after = snap(100, 5, (0.1, 50), (0.5, 90), (1.0, 100), (INF, 100))
    got = window(before, after)
    # rank 95 lies in (0.5, 1.0]: 0.5 + 0.5 * (95 - 90) / 10 = 0.75 s
    assert got == WindowMetrics(requests=100, error_rate=0.05, p95_latency_ms=750.0)


def test_first_bucket_starts_at_zero_and_inf_bucket_caps() -> None:
    assert histogram_quantile(0.95, [(0.2, 100), (INF, 100)]) == pytest.approx(0.19)
    # rank in the +Inf bucket: the highest finite bound, as Prometheus does
    assert histogram_quantile(0.95, [(0.1, 10), (0.5, 20), (INF, 100)]) == 0.5
    assert histogram_quantile(0.95, [(INF, 0)]) is None
    assert histogram_quantile(0.95, []) is None


def test_window_is_a_delta() -> None:
    before = snap(1000, 10, (0.1, 900), (1.0, 1000), (INF, 1000))
    after = snap(1100, 30, (0.1, 900), (1.0, 1100), (INF, 1100))
    got = window(before, after)
    assert got.requests == 100 and got.error_rate == pytest.approx(0.2)
    # all 100 new requests in (0.1, 1.0]: rank 95 -> 0.1 + 0.9 * 0.95
    assert got.p95_latency_ms == pytest.approx(955.0)


def test_counter_reset_uses_after_as_the_delta() -> None:
    before = snap(5000, 50, (0.1, 4000), (1.0, 5000), (INF, 5000))
    after = snap(40, 4, (0.1, 20), (1.0, 40), (INF, 40))
    got = window(before, after)
    assert got.requests == 40 and got.error_rate == pytest.approx(0.1)
    assert got.p95_latency_ms == pytest.approx(100 + 900 * (38 - 20) / 20)


def test_no_requests_means_no_rates() -> None:
    same = snap(10, 1, (0.1, 10), (INF, 10))
    assert window(same, same) == WindowMetrics(requests=0, error_rate=None, p95_latency_ms=None)
    assert window(snap(0, 0), snap(0, 0)) == WindowMetrics(0, None, None)


def test_parse_declared_but_empty_counter() -> None:
    text = ("# HELP http_requests_total x\n# TYPE http_requests_total counter\n"
            "# TYPE http_request_duration_seconds histogram\n")
    got = parse(text, at=1.0)
    assert got == Scrape(at=1.0, requests=0, errors_5xx=0, buckets=())
