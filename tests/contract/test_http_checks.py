"""HttpChecker against the real target app and a tiny misbehaving server, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from integrations.emulators.target_app import TargetApp
from integrations.emulators.world import EmuTrafficTarget, World, default_world
from integrations.http_checks import MAX_BODY_BYTES, HttpChecker

API = "medicalcor-api"
GOOD = "medicalcor-api-00014-def"


@pytest_asyncio.fixture
async def world() -> World:
    return default_world(bad_latest=True)


@pytest_asyncio.fixture
async def target(world: World) -> AsyncIterator[TargetApp]:
    app = TargetApp(world, seed=7)
    await app.start("127.0.0.1", 0)
    yield app
    await app.stop()


@pytest_asyncio.fixture
async def checker() -> AsyncIterator[HttpChecker]:
    async with HttpChecker() as chk:
        yield chk


class Odd:
    """A loopback server that is slow, redirects, or answers too much."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.user_agents: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([
            web.get("/slow", self.slow), web.get("/redirect", self.redirect),
            web.get("/big", self.big), web.get("/endless", self.endless),
            web.get("/degraded", self.degraded), web.get("/text500", self.text500),
        ])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def slow(self, request: web.Request) -> web.Response:
        self.user_agents.append(request.headers.get("User-Agent", ""))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 5)
        return web.json_response({"status": "healthy"})

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("http://elsewhere.invalid/health")

    async def big(self, request: web.Request) -> web.Response:
        body = json.dumps({"status": "healthy", "pad": "x" * (4 * MAX_BODY_BYTES)})
        return web.Response(text=body, content_type="application/json")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 8192
        try:
            for _ in range(4096):  # 32 MiB at most, unless the client hangs up first
                await response.write(chunk)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    async def degraded(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "degraded"})

    async def text500(self, request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")


@pytest_asyncio.fixture
async def odd() -> AsyncIterator[Odd]:
    server = Odd()
    await server.start()
    yield server
    await server.stop()


def heal(world: World) -> None:
    world.services[API].traffic = [EmuTrafficTarget(revision=GOOD, percent=100)]


async def test_healthy_revision_passes_health_ready_and_smoke(
    world: World, target: TargetApp, checker: HttpChecker
) -> None:
    heal(world)
    base = target.service_url(API)
    health = await checker.check("health", f"{base}/health", timeout=2)
    ready = await checker.check("ready", f"{base}/ready", timeout=2, expect_json_status="ready")
    smoke = await checker.check("smoke: /api/v1/health", f"{base}/api/v1/health", timeout=2)

    assert (health.ok, health.status, health.detail) == (True, 200, "200 healthy")
    assert (ready.ok, ready.detail) == (True, "200 ready")
    assert ready.dependencies == {"database": "ok", "redis": "ok"}
    assert (smoke.ok, smoke.detail) == (True, "200 ok")
    assert health.elapsed_ms > 0
    assert health.dependencies == {}


async def test_unhealthy_revision_fails_with_the_reason(
    target: TargetApp, checker: HttpChecker
) -> None:
    base = target.service_url(API)
    health = await checker.check("health", f"{base}/health", timeout=2)
    ready = await checker.check("ready", f"{base}/ready", timeout=2)
    smoke = await checker.check("smoke", f"{base}/api/v1/health", timeout=2)

    assert (health.ok, health.status) == (False, 503)
    assert health.detail == "503 unhealthy: database connection pool exhausted"
    assert (ready.ok, ready.status) == (False, 503)
    assert ready.dependencies == {"database": "error: connection refused", "redis": "ok"}
    assert ready.detail == "503 not_ready: database=error: connection refused"
    assert (smoke.ok, smoke.detail) == (False, "500 error: internal server error")


async def test_json_status_is_checked_only_when_asked(odd: Odd, checker: HttpChecker) -> None:
    plain = await checker.check("health", f"{odd.url}/degraded", timeout=2)
    strict = await checker.check("health", f"{odd.url}/degraded", timeout=2,
                                 expect_json_status="healthy")
    assert (plain.ok, plain.detail) == (True, "200 degraded")
    assert (strict.ok, strict.status, strict.detail) == (False, 200, "200 but status=degraded")


async def test_unknown_path_and_plain_text_errors(
    target: TargetApp, odd: Odd, checker: HttpChecker
) -> None:
    missing = await checker.check("smoke", f"{target.url}/no-such-service/health", timeout=2)
    assert (missing.ok, missing.status) == (False, 404)
    assert missing.detail.startswith("404 Not Found: not_found")
    text = await checker.check("smoke", f"{odd.url}/text500", timeout=2)
    assert (text.ok, text.detail) == (False, "500 Internal Server Error: boom")


async def test_connection_refused_is_reported_not_raised(checker: HttpChecker) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await checker.check("health", f"http://127.0.0.1:{port}/health", timeout=2)
    assert (result.ok, result.status, result.detail) == (False, None, "connection refused")


async def test_timeout_is_reported_with_the_limit(odd: Odd, checker: HttpChecker) -> None:
    result = await checker.check("health", f"{odd.url}/slow", timeout=0.2)
    assert (result.ok, result.status, result.detail) == (False, None, "timeout after 0.2s")
    assert 150 <= result.elapsed_ms < 1500
    assert odd.user_agents == ["rollbot/0.1"]


async def test_redirect_is_reported_not_followed(odd: Odd, checker: HttpChecker) -> None:
    result = await checker.check("health", f"{odd.url}/redirect", timeout=2)
    assert (result.ok, result.status) == (False, 302)
    assert result.detail == "302 redirect to http://elsewhere.invalid/health (not followed)"


async def test_oversized_body_is_not_read_past_the_limit(odd: Odd, checker: HttpChecker) -> None:
    big = await checker.check("health", f"{odd.url}/big", timeout=2)
    assert (big.ok, big.status) == (True, 200)
    assert "over 64 KiB" in big.detail
    strict = await checker.check("health", f"{odd.url}/big", timeout=2,
                                 expect_json_status="healthy")
    assert not strict.ok and "over 64 KiB" in strict.detail
    # An endless body would time out if it were read to the end.
    endless = await checker.check("health", f"{odd.url}/endless", timeout=2)
    assert endless.status == 200 and "over 64 KiB" in endless.detail
    assert endless.elapsed_ms < 1500


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/health", "http://"])
async def test_bad_urls_fail_without_raising(checker: HttpChecker, url: str) -> None:
    result = await checker.check("health", url, timeout=1)
    assert not result.ok and result.status is None and result.detail


async def test_a_given_session_is_used_and_left_open(target: TargetApp) -> None:
    async with aiohttp.ClientSession() as session:
        checker = HttpChecker(session, user_agent="rollbot-test")
        result = await checker.check("index", f"{target.url}/", timeout=2)
        await checker.close()
        assert result.ok and result.detail == "200 OK"
        assert not session.closed
