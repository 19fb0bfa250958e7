"""The target app behaves as the World's serving revision, and its metrics and
error logs show a rollback healing new traffic."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from integrations.emulators.target_app import TargetApp, image_tag
from integrations.emulators.world import EmuTrafficTarget, World, default_world
from tests.contract.conftest import FakeClock

API = "medicalcor-api"
BAD = "medicalcor-api-00015-abc"
GOOD = "medicalcor-api-00014-def"


@pytest_asyncio.fixture
async def world() -> World:
    return default_world(bad_latest=True)


@pytest_asyncio.fixture
async def app(world: World) -> AsyncIterator[TargetApp]:
    target = TargetApp(world, clock=FakeClock(), seed=7)
    await target.start()
    yield target
    await target.stop()


async def get(url: str) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        text = await resp.text()
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body, text


def flip(world: World, service: str, revision: str) -> None:
    world.services[service].traffic = [EmuTrafficTarget(revision=revision, percent=100)]


def totals(metrics_text: str) -> tuple[float, float, float, float]:
    """(all requests, 5xx requests, duration sum, duration count) from a scrape."""
    total = errors = dsum = dcount = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                total += sample.value
                if sample.labels["status"].startswith("5"):
                    errors += sample.value
            elif sample.name == "http_request_duration_seconds_sum":
                dsum = sample.value
            elif sample.name == "http_request_duration_seconds_count":
                dcount = sample.value
    return total, errors, dsum, dcount


async def window(app: TargetApp, seconds: float) -> tuple[float, float]:
    """5xx ratio and mean latency of the traffic in the next `seconds`, from two scrapes."""
    _, _, before = await get(f"{app.url}/{API}/metrics")
    app.advance(seconds)
    _, _, after = await get(f"{app.url}/{API}/metrics")
    t0, e0, s0, c0 = totals(before)
    t1, e1, s1, c1 = totals(after)
    return (e1 - e0) / (t1 - t0), (s1 - s0) / (c1 - c0)


async def test_endpoints_follow_the_serving_revision(app: TargetApp, world: World) -> None:
    status, body, _ = await get(f"{app.url}/{API}/health")
    assert (status, body["status"], body["revision"]) == (503, "unhealthy", BAD)
    assert body["error"]
    status, body, _ = await get(f"{app.url}/{API}/ready")
    assert status == 503 and body == {"status": "not_ready", "checks": {
        "database": "error: connection refused", "redis": "ok"}}
    status, body, _ = await get(f"{app.url}/{API}/api/v1/health")
    assert status == 500 and body["version"] == "v1.3.0"

    flip(world, API, GOOD)
    status, body, _ = await get(f"{app.url}/{API}/health")
    assert (status, body) == (200, {"status": "healthy", "revision": GOOD})
    status, body, _ = await get(f"{app.url}/{API}/ready")
    assert (status, body) == (200, {"status": "ready", "checks": {"database": "ok",
                                                                  "redis": "ok"}})
    status, body, _ = await get(f"{app.url}/{API}/api/v1/health")
    assert (status, body["status"], body["version"]) == (200, "ok", "v1.2.2")

    # Services are independent; the healthy web service is unaffected by api's state.
    flip(world, API, BAD)
    status, body, _ = await get(f"{app.url}/medicalcor-web/health")
    assert status == 503  # bad_latest breaks the newest web revision too
    flip(world, "medicalcor-web", "medicalcor-web-00013-pqr")
    assert (await get(f"{app.url}/medicalcor-web/health"))[0] == 200
    assert (await get(f"{app.url}/{API}/health"))[0] == 503


async def test_unknown_service_and_path_are_json_404s(app: TargetApp) -> None:
    status, body, _ = await get(f"{app.url}/no-such-service/health")
    assert status == 404 and body["error"] == "not_found"
    status, body, _ = await get(f"{app.url}/{API}/nope")
    assert status == 404 and body["error"] == "not_found"


async def test_split_traffic_is_weighted(app: TargetApp, world: World) -> None:
    world.services[API].traffic = [EmuTrafficTarget(revision=GOOD, percent=50),
                                   EmuTrafficTarget(revision=BAD, percent=50)]
    seen = [(await get(f"{app.url}/{API}/health"))[1]["revision"] for _ in range(40)]
    assert {GOOD, BAD} == set(seen)


async def test_metrics_show_a_rollback_healing_new_traffic(
        app: TargetApp, world: World) -> None:
    status, _, text = await get(f"{app.url}/{API}/metrics")
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"http_requests", "http_request_duration_seconds"} <= names

    bad_rate, bad_latency = await window(app, 60)
    assert 0.2 < bad_rate < 0.5, bad_rate  # 00015-abc fails 35% of requests
    flip(world, API, GOOD)  # the rollback
    good_rate, good_latency = await window(app, 60)
    assert good_rate < 0.02, good_rate
    assert good_latency < bad_latency / 5
    total, _, _, count = totals((await get(f"{app.url}/{API}/metrics"))[2])
    assert total == count == 20 * 120  # ~20 req/s of simulated traffic


async def test_error_logs_are_sampled_per_revision(app: TargetApp, world: World) -> None:
    start = len(world.logs)
    app.advance(10)
    bad_logs = [e for e in world.logs[start:] if e.service == API]
    assert 10 <= len(bad_logs) <= 5 * 11  # ~7 errors/s, sampled at most 5 per second
    entry = bad_logs[0]
    assert entry.severity == "ERROR" and entry.service == API and entry.revision == BAD
    assert f"(revision {BAD})" in entry.message and " 5" in entry.message
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(bad_logs))

    flip(world, API, GOOD)
    flip(world, "medicalcor-web", "medicalcor-web-00013-pqr")
    mark = len(world.logs)
    app.advance(10)
    assert len(world.logs) - mark <= 2  # 0.1% of 400 requests


def test_image_tag() -> None:
    assert image_tag("europe-west3-docker.pkg.dev/p/apps/api:v1.3.0") == "v1.3.0"
    assert image_tag("localhost:5000/api") == "latest"
    assert image_tag("gcr.io/p/api@sha256:abc") == "sha256:abc"
