"""HttpChecker's smoke expectations (expect_status, expect_json) against a tiny
aiohttp app on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from integrations.http_checks import HttpChecker

Handler = Callable[[web.Request], Awaitable[web.Response]]
READY_OK = {"status": "ok", "version": 3, "live": True,
            "checks": {"database": "ok", "redis": {"status": "ok"}}}


def _json(body: Any, status: int = 200) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(body, status=status)
    return handler


def _plain(**kwargs: Any) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(**kwargs)
    return handler


@pytest_asyncio.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/ready", _json(READY_OK))
    app.router.add_get("/db-down", _json(
        {"status": "degraded", "checks": {"database": "error", "redis": "ok"}}))
    app.router.add_get("/down", _json(
        {"status": "unhealthy", "error": "database unreachable"}, 503))
    app.router.add_get("/created", _json({"status": "ok"}, 201))
    app.router.add_get("/text", _plain(text="ok"))
    app.router.add_get("/moved", _plain(
        status=301, headers={"Location": "https://elsewhere.example/"}))
    app.router.add_get("/dotted", _json({"checks.database": "ok"}))
    app.router.add_get("/typed", _json({"count": 1, "flag": 1, "ratio": 2.0}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest_asyncio.fixture
async def checker() -> AsyncIterator[HttpChecker]:
    async with HttpChecker() as chk:
        yield chk


async def test_defaults_unchanged(base: str, checker: HttpChecker) -> None:
    ok = await checker.check("smoke", f"{base}/created", timeout=2)
    assert ok.ok and ok.detail == "201 ok"
    down = await checker.check("smoke", f"{base}/down", timeout=2)
    assert not down.ok and down.detail == "503 unhealthy: database unreachable"


async def test_expect_status_match_and_mismatch(base: str, checker: HttpChecker) -> None:
    assert (await checker.check("s", f"{base}/ready", timeout=2, expect_status=200)).ok
    created = await checker.check("s", f"{base}/created", timeout=2, expect_status=200)
    assert not created.ok and created.status == 201
    assert created.detail == "expected status 200, got 201"
    down = await checker.check("s", f"{base}/down", timeout=2, expect_status=200)
    assert not down.ok
    assert down.detail == "expected status 200, got 503: database unreachable"
    # A non-2xx status passes when it is the one asked for.
    assert (await checker.check("s", f"{base}/down", timeout=2, expect_status=503)).ok
    moved = await checker.check("s", f"{base}/moved", timeout=2, expect_status=200)
    assert not moved.ok and moved.detail.startswith("expected status 200, got 301 redirect")
    assert (await checker.check("s", f"{base}/moved", timeout=2, expect_status=301)).ok


async def test_expect_json_fields(base: str, checker: HttpChecker) -> None:
    result = await checker.check("s", f"{base}/ready", timeout=2, expect_status=200,
                                 expect_json={"status": "ok", "checks.database": "ok",
                                              "checks.redis.status": "ok", "version": 3,
                                              "live": True})
    assert result.ok, result.detail
    assert result.detail == "200 ok"


async def test_expect_json_mismatch_names_the_field(base: str, checker: HttpChecker) -> None:
    result = await checker.check("s", f"{base}/db-down", timeout=2,
                                 expect_json={"checks.database": "ok", "checks.redis": "ok"})
    assert not result.ok and result.status == 200
    assert result.detail == "200 but checks.database = error (expected ok)"
    assert result.dependencies == {"database": "error", "redis": "ok"}


async def test_expect_json_missing_and_several(base: str, checker: HttpChecker) -> None:
    result = await checker.check("s", f"{base}/ready", timeout=2,
                                 expect_json={"checks.queue": "ok", "version": 4,
                                              "live": False})
    assert not result.ok
    assert result.detail == ("200 but checks.queue missing (expected ok); "
                             "version = 3 (expected 4); live = true (expected false)")


async def test_expect_json_types_are_strict(base: str, checker: HttpChecker) -> None:
    ok = await checker.check("s", f"{base}/typed", timeout=2,
                             expect_json={"count": 1, "ratio": 2})
    assert ok.ok, ok.detail
    flag = await checker.check("s", f"{base}/typed", timeout=2, expect_json={"flag": True})
    assert not flag.ok and flag.detail == "200 but flag = 1 (expected true)"
    text = await checker.check("s", f"{base}/typed", timeout=2, expect_json={"count": "1"})
    assert not text.ok and text.detail == '200 but count = 1 (expected "1")'


async def test_literal_dotted_key_wins(base: str, checker: HttpChecker) -> None:
    assert (await checker.check("s", f"{base}/dotted", timeout=2,
                                expect_json={"checks.database": "ok"})).ok


@pytest.mark.parametrize("path", ["/text", "/down"])
async def test_expect_json_without_json_body(base: str, checker: HttpChecker, path: str) -> None:
    result = await checker.check("s", f"{base}{path}", timeout=2, expect_json={"status": "ok"})
    assert not result.ok
    if path == "/text":
        assert result.detail == "200 but no JSON object in the body (fields not checked)"
    else:  # the status fails first
        assert result.detail.startswith("503 unhealthy")
