"""Immediate checks after a rollback (runbook: "Immediate Checks (Within 2 Minutes)"),
and the first of them, the runbook's "Check the serving revision" (`serving_check`).

Which URLs to check comes from the catalog's service section; how long and how often
to look comes from its `verification` section. All checks run at once; a failing
check is polled again every `interval_seconds` until it passes or `window_seconds`
have passed since the start, and each final result is reported through `on_result`
as soon as it is known, so the thread shows each line without waiting for the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from bot.catalog import ServiceSection, VerificationSection
from bot.checks import CheckKind, CheckResult
from bot.plans import traffic_plain
from integrations.http_checks import HttpCheckOutcome, JsonExpectation

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    name: str  # "health", "ready", "smoke: /api/v1/health"
    url: str
    expect_json_status: str | None = None
    expect_status: int | None = None  # None: any 2xx
    expect_json: dict[str, str | int | bool] | None = None  # field (dotted path) → value


class Checker(Protocol):
    """What `run_checks` needs of `integrations.http_checks.HttpChecker`."""

    async def check(self, name: str, url: str, *, timeout: float,  # noqa: ASYNC109
                    expect_json_status: str | None = None,
                    expect_status: int | None = None,
                    expect_json: Mapping[str, JsonExpectation] | None = None,
                    ) -> HttpCheckOutcome: ...


SERVING = "serving"


def serving_check(requested: Mapping[str, int], serving: Mapping[str, int] | None,
                  before: Mapping[str, int] | None, *, elapsed_ms: float,
                  error: str | None = None) -> CheckResult:
    """Step 4 of the runbook, "Check the serving revision": what Cloud Run serves, read
    back after the change (`serving`; None with `error` when it could not be read),
    passes only if it is what was asked for."""
    if serving is None:
        detail, ok = f"could not read Cloud Run: {error or 'no answer'}", False
    elif dict(serving) == dict(requested):
        detail, ok = f"{traffic_plain(serving)}, as asked (before: {traffic_plain(before)})", True
    else:
        detail = f"{traffic_plain(serving)}, but {traffic_plain(requested)} was asked for"
        ok = False
    return CheckResult(name=SERVING, url="", ok=ok, status=None, detail=detail,
                       elapsed_ms=elapsed_ms, kind=CheckKind.CLOUD_RUN)


def _smoke_name(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"smoke: {path}" + (f"?{parts.query}" if parts.query else "")


def checks_for(service: ServiceSection) -> list[CheckSpec]:
    """The service's health, ready and smoke checks, in that order.

    Health and ready pass on HTTP 2xx (the JSON "status" is reported, not required);
    a smoke URL passes on its `expect_status` (2xx when unset) and `expect_json` fields.
    """
    specs: list[CheckSpec] = []
    if service.health_url:
        specs.append(CheckSpec("health", service.health_url, None))
    if service.ready_url:
        specs.append(CheckSpec("ready", service.ready_url, None))
    specs.extend(
        CheckSpec(_smoke_name(smoke.url), smoke.url, None, expect_status=smoke.expect_status,
                  expect_json=dict(smoke.expect_json) if smoke.expect_json else None)
        for smoke in service.smoke_urls)
    return specs


def http_result(spec: CheckSpec, outcome: HttpCheckOutcome, attempts: int = 1) -> CheckResult:
    """The check `spec` as the workflow reports it: its last GET's `outcome`, after
    `attempts` tries."""
    return CheckResult(name=spec.name, url=spec.url, ok=outcome.ok, status=outcome.status,
                       detail=outcome.detail, elapsed_ms=outcome.elapsed_ms,
                       attempts=attempts, dependencies=outcome.dependencies,
                       kind=CheckKind.HTTP)


async def run_checks(
    specs: Sequence[CheckSpec],
    policy: VerificationSection,
    checker: Checker,
    *,
    on_result: Callable[[CheckResult], Awaitable[None]],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[CheckResult]:
    """Run every check concurrently until it passes or the window closes.

    Returns the final results in `specs` order (empty when there is nothing to
    check). `on_result` is awaited once per check, in completion order, one call at
    a time; an exception it raises is logged and does not affect the other checks.
    """
    if not specs:
        return []
    start = clock()
    deadline = start + policy.window_seconds
    report_lock = asyncio.Lock()  # FIFO: thread lines come out in completion order

    async def attempt(spec: CheckSpec) -> HttpCheckOutcome:
        # The smoke expectations are passed only when set, so checkers written before
        # them (test doubles) keep working for plain checks.
        extra: dict[str, Any] = {}
        if spec.expect_status is not None:
            extra["expect_status"] = spec.expect_status
        if spec.expect_json:
            extra["expect_json"] = spec.expect_json
        try:
            return await checker.check(spec.name, spec.url, timeout=policy.timeout_seconds,
                                       expect_json_status=spec.expect_json_status, **extra)
        except Exception as exc:  # a broken checker fails this check, not the run
            log.exception("check %s (%s) raised", spec.name, spec.url)
            return HttpCheckOutcome(ok=False, status=None,
                                    detail=f"check error: {type(exc).__name__}", elapsed_ms=0.0)

    async def poll(spec: CheckSpec) -> CheckResult:
        attempts = 0
        while True:
            attempts += 1
            began = clock()
            outcome = await attempt(spec)
            now = clock()
            if outcome.ok or now >= deadline:
                break
            # Attempts start every interval; the last one lands on the window's end.
            wake = min(began + policy.interval_seconds, deadline)
            if wake > now:
                await sleep(wake - now)
        final = http_result(spec, outcome, attempts)
        async with report_lock:
            try:
                await on_result(final)
            except Exception:
                log.exception("reporting check %s failed; the other checks go on", spec.name)
        return final

    return list(await asyncio.gather(*(poll(spec) for spec in specs)))

