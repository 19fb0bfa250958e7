"""run_checks: concurrent polling within the catalog's window, results reported as
they become final. Virtual time for the policy; one real run against the target app."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable

import pytest

from bot.catalog import ServiceSection, VerificationSection
from bot.checks import CheckKind, CheckResult, all_passed
from bot.verification import CheckSpec, checks_for, http_result, run_checks
from integrations.emulators.target_app import TargetApp
from integrations.emulators.world import EmuTrafficTarget, default_world
from integrations.http_checks import HttpChecker, HttpCheckOutcome

POLICY = VerificationSection(window_seconds=30, interval_seconds=10, timeout_seconds=5)


class VirtualTime:
    """A clock and a sleep for many tasks: time jumps to the next wake-up once
    every task is waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    async def run(self, coro: Awaitable[list[CheckResult]]) -> list[CheckResult]:
        task = asyncio.ensure_future(coro)
        while not task.done():
            for _ in range(20):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers and not task.done():
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)
        return task.result()


class ScriptedChecker:
    """check() answers from a per-name script: (ok, seconds the check takes)."""

    def __init__(self, vt: VirtualTime, scripts: dict[str, Callable[[float], bool]],
                 duration: float = 0.0) -> None:
        self.vt = vt
        self.scripts = scripts
        self.duration = duration
        self.calls: list[tuple[str, float]] = []

    async def check(self, name: str, url: str, *, timeout: float,  # noqa: ASYNC109
                    expect_json_status: str | None = None) -> HttpCheckOutcome:
        started = self.vt.now
        self.calls.append((name, started))
        assert timeout == POLICY.timeout_seconds
        if self.duration:
            await self.vt.sleep(self.duration)
        ok = self.scripts[name](started)
        return HttpCheckOutcome(ok=ok, status=200 if ok else 503,
                                detail="200 healthy" if ok else "503 unhealthy", elapsed_ms=1.0)


def specs(*names: str) -> list[CheckSpec]:
    return [CheckSpec(name, f"http://127.0.0.1:9/{name}", None) for name in names]


async def test_fails_twice_then_passes_and_one_never_passes() -> None:
    vt = VirtualTime()
    tries: dict[str, int] = {"health": 0}

    def flaky(_: float) -> bool:
        tries["health"] += 1
        return tries["health"] >= 3

    checker = ScriptedChecker(vt, {"health": flaky, "ready": lambda _: False})
    reported: list[tuple[str, float]] = []

    async def on_result(result: CheckResult) -> None:
        reported.append((result.name, vt.now))

    results = await vt.run(run_checks(specs("health", "ready"), POLICY, checker,
                                      on_result=on_result, sleep=vt.sleep, clock=vt.clock))

    health, ready = results
    assert (health.name, health.ok, health.attempts) == ("health", True, 3)
    # Never passes: tried at 0, 10, 20 and at the window's end, 30.
    assert (ready.name, ready.ok, ready.attempts, ready.detail) == (
        "ready", False, 4, "503 unhealthy")
    assert [t for name, t in checker.calls if name == "ready"] == [0, 10, 20, 30]
    assert reported == [("health", 20), ("ready", 30)]
    assert not all_passed(results)


async def test_last_attempt_lands_on_the_window_end_and_slow_checks_count() -> None:
    vt = VirtualTime()
    policy = VerificationSection(window_seconds=25, interval_seconds=10, timeout_seconds=5)
    checker = ScriptedChecker(vt, {"health": lambda _: False}, duration=4)
    results = await vt.run(run_checks(specs("health"), policy, checker,
                                      on_result=_ignore, sleep=vt.sleep, clock=vt.clock))
    # Attempts start every interval (not interval after the end), the last at 25.
    assert [t for _, t in checker.calls] == [0, 10, 20, 25]
    assert results[0].attempts == 4 and not results[0].ok


async def _ignore(result: CheckResult) -> None:
    return None


async def test_on_result_follows_completion_order_results_follow_spec_order() -> None:
    vt = VirtualTime()
    checker = ScriptedChecker(vt, {
        "health": lambda t: t >= 20,   # passes on the third try
        "ready": lambda t: True,       # passes at once
        "smoke: /api": lambda t: t >= 10,
    })
    order: list[str] = []

    async def on_result(result: CheckResult) -> None:
        order.append(result.name)

    results = await vt.run(run_checks(specs("health", "ready", "smoke: /api"), POLICY, checker,
                                      on_result=on_result, sleep=vt.sleep, clock=vt.clock))
    assert order == ["ready", "smoke: /api", "health"]
    assert [r.name for r in results] == ["health", "ready", "smoke: /api"]
    assert [r.attempts for r in results] == [3, 1, 2]
    assert all_passed(results)


async def test_an_exception_in_on_result_does_not_stop_other_checks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vt = VirtualTime()
    checker = ScriptedChecker(vt, {"health": lambda t: True, "ready": lambda t: t >= 10})
    seen: list[str] = []

    async def on_result(result: CheckResult) -> None:
        seen.append(result.name)
        if result.name == "health":
            raise RuntimeError("slack is down")

    results = await vt.run(run_checks(specs("health", "ready"), POLICY, checker,
                                      on_result=on_result, sleep=vt.sleep, clock=vt.clock))
    assert seen == ["health", "ready"]
    assert [r.ok for r in results] == [True, True]
    assert "reporting check health failed" in caplog.text


async def test_a_checker_that_raises_fails_only_its_check() -> None:
    vt = VirtualTime()

    def broken(_: float) -> bool:
        raise RuntimeError("bug")

    checker = ScriptedChecker(vt, {"health": broken, "ready": lambda t: True})
    results = await vt.run(run_checks(specs("health", "ready"), POLICY, checker,
                                      on_result=_ignore, sleep=vt.sleep, clock=vt.clock))
    assert results[0].detail == "check error: RuntimeError" and results[0].attempts == 4
    assert results[1].ok


async def test_nothing_configured_means_no_checks() -> None:
    service = ServiceSection(cloud_run_service="medicalcor-api")
    assert checks_for(service) == []
    called: list[CheckResult] = []

    async def on_result(result: CheckResult) -> None:
        called.append(result)

    assert await run_checks([], POLICY, HttpChecker(), on_result=on_result) == []
    assert called == [] and not all_passed([])


def test_an_http_outcome_becomes_the_checks_result() -> None:
    spec = CheckSpec("ready", "http://127.0.0.1:9/ready", "ready")
    outcome = HttpCheckOutcome(ok=False, status=503, detail="503 unhealthy: redis=down",
                               elapsed_ms=12.5, dependencies={"redis": "down"})
    assert http_result(spec, outcome, attempts=3) == CheckResult(
        name="ready", url="http://127.0.0.1:9/ready", ok=False, status=503,
        detail="503 unhealthy: redis=down", elapsed_ms=12.5, attempts=3,
        dependencies={"redis": "down"}, kind=CheckKind.HTTP)


def test_checks_for_names_health_ready_and_smoke_paths() -> None:
    service = ServiceSection(
        cloud_run_service="medicalcor-api",
        health_url="https://api.example.com/health",
        ready_url="https://api.example.com/ready",
        smoke_urls=["https://api.example.com/api/v1/health", "https://api.example.com/?q=1"],
    )
    assert checks_for(service) == [
        CheckSpec("health", "https://api.example.com/health", None),
        CheckSpec("ready", "https://api.example.com/ready", None),
        CheckSpec("smoke: /api/v1/health", "https://api.example.com/api/v1/health", None),
        CheckSpec("smoke: /?q=1", "https://api.example.com/?q=1", None),
    ]


async def test_checks_pass_once_traffic_moves_to_a_healthy_revision() -> None:
    world = default_world(bad_latest=True)
    app = TargetApp(world, seed=3)
    await app.start("127.0.0.1", 0)
    base = app.service_url("medicalcor-api")
    service = ServiceSection(cloud_run_service="medicalcor-api", health_url=f"{base}/health",
                             ready_url=f"{base}/ready", smoke_urls=[f"{base}/api/v1/health"])
    policy = VerificationSection(window_seconds=3, interval_seconds=0.05, timeout_seconds=1)
    reported: list[CheckResult] = []

    async def on_result(result: CheckResult) -> None:
        reported.append(result)

    async def roll_back() -> None:
        await asyncio.sleep(0.2)
        world.services["medicalcor-api"].traffic = [
            EmuTrafficTarget(revision="medicalcor-api-00014-def", percent=100)]

    try:
        async with HttpChecker() as checker:
            flip = asyncio.create_task(roll_back())
            results = await run_checks(checks_for(service), policy, checker, on_result=on_result)
            await flip
    finally:
        await app.stop()

    assert [r.name for r in results] == ["health", "ready", "smoke: /medicalcor-api/api/v1/health"]
    assert all(r.ok for r in results), results
    assert all(r.attempts > 1 for r in results)
    assert results[1].dependencies == {"database": "ok", "redis": "ok"}
    assert sorted(r.name for r in reported) == sorted(r.name for r in results)
