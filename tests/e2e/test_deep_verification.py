"""Deep verification: a baseline before the change, measurements after it (Cloud
Monitoring per revision, Cloud Logging errors), tables in the thread, a verdict
stored with the rollback and shown on the card; `/rollback verify` on demand."""

from __future__ import annotations

import asyncio
import re
import sys

import grpc

from bot.catalog import SmokeCommand
from bot.changes.model import Change, State
from bot.judgement import Measurement
from tests.e2e.conftest import RunningBot
from tests.e2e.test_rollback_flow import (
    ALICE,
    CONFIRM,
    TARGET,
    _click,
    _posted,
    _propose,
    _text,
    _wait_state,
)

LIST_TIME_SERIES = "google.monitoring.v3.MetricService/ListTimeSeries"
LIST_LOG_ENTRIES = "google.logging.v2.LoggingServiceV2/ListLogEntries"


async def _analysed(bot: RunningBot, count: int, within: float = 20) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        rollback = (await bot.runtime.deps.changes.history("api", 1))[0]
        if len(rollback.analysis) >= count:
            return rollback
        assert loop.time() < deadline, f"{len(rollback.analysis)} of {count} measurements"
        await asyncio.sleep(0.1)


async def test_baseline_then_measurements_then_verdict(running_bot: RunningBot) -> None:
    slack, google = running_bot.world.slack, running_bot.world.google
    await asyncio.sleep(1.0)  # let the bad revision serve some (simulated) traffic
    card = await _propose(running_bot)
    for _ in range(100):  # the baseline job runs right after the card is posted
        rollback = (await running_bot.runtime.deps.changes.history("api", 1))[0]
        if rollback.baseline:
            break
        await asyncio.sleep(0.05)
    baseline = Measurement.from_json(rollback.baseline or {})
    assert baseline.source.startswith("Cloud Monitoring")
    assert baseline.error_rate is not None and baseline.error_rate > 0.2  # the incident
    assert baseline.log_errors and baseline.log_errors > 0
    # The logging filter is the runbook's, scoped to the service.
    log_filter = google.calls_to(LIST_LOG_ENTRIES)[-1].request.filter
    assert 'resource.type="cloud_run_revision"' in log_filter
    assert 'resource.labels.service_name="medicalcor-api"' in log_filter
    assert "severity>=ERROR" in log_filter and "timestamp>=" in log_filter

    await _click(running_bot, card, CONFIRM, "U0BOB")
    await _wait_state(running_bot, State.SUCCEEDED)
    rollback = await _analysed(running_bot, 2)
    after = Measurement.from_json({k: v for k, v in rollback.analysis[-1].items()
                                   if k != "index"})
    assert after.source == f"Cloud Monitoring ({TARGET})"
    assert after.error_rate is not None and after.error_rate < 0.05
    assert after.p95_latency_ms is not None and after.p95_latency_ms < 1000
    assert rollback.verdict == "verified"
    table = await slack.wait_for("chat.postMessage", _posted("Metrics immediately"))
    assert table.args["thread_ts"] == rollback.thread_ts
    for column in ("5xx rate", "p95 latency", "errors in logs", "before", "after", "change"):
        assert column in _text(table)
    await slack.wait_for("chat.postMessage", _posted("Final verdict"))
    assert google.calls_to(LIST_TIME_SERIES)


async def test_still_failing_after_rollback_is_degraded_or_failed(
    running_bot: RunningBot,
) -> None:
    world = running_bot.world.world
    # The old revision is up (health passes) but serves errors and slow answers.
    old = world.services["medicalcor-api"].revisions[TARGET]
    old.error_rate, old.p95_latency_ms = 0.4, 3000.0
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _analysed(running_bot, 2)
    assert rollback.verdict == "degraded"
    table = await running_bot.world.slack.wait_for("chat.postMessage", _posted("❌ 5xx rate"))
    assert "Errors still logged" in _text(table)  # sample log lines shown
    await running_bot.world.slack.wait_for("chat.update", lambda c: c.args.get("ts") ==
                                           card.response["ts"] and "degraded" in _text(c))


async def test_verify_on_demand(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    await slack.send_command(running_bot.events_url, "verify api", **ALICE)
    verdict = await slack.wait_for("chat.postMessage", _posted("api: *failed*"), timeout=15)
    head = await slack.wait_for("chat.postMessage", _posted("Verification of api"))
    assert verdict.args["thread_ts"] == head.response["ts"]
    await slack.wait_for("chat.postMessage", _posted("Metrics now"))
    # Fix forward: the world heals, and the same command says so.
    world = running_bot.world.world
    world.services["medicalcor-api"].traffic[0].revision = TARGET
    await asyncio.sleep(1.2)  # new traffic on the healthy revision
    await slack.send_command(running_bot.events_url, "verify api", **ALICE)
    await slack.wait_for("chat.postMessage", lambda c: c.http_status == 200 and (
        "api: *verified*" in _text(c) or "api: *degraded*" in _text(c)), timeout=15)


async def test_no_metrics_at_all_is_degraded_on_the_card_and_on_demand(
    running_bot: RunningBot,
) -> None:
    """Cloud Monitoring UNAVAILABLE and /metrics 503: no data is never a pass, and the
    rollback and `/rollback verify` reach the same verdict from the same measurements."""
    world, slack = running_bot.world, running_bot.world.slack
    world.google.faults.inject(LIST_TIME_SERIES, grpc.StatusCode.UNAVAILABLE, count=-1)
    world.target.metrics_faults["medicalcor-api"] = 503
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _analysed(running_bot, 2)
    assert rollback.state == State.SUCCEEDED and rollback.verdict == "degraded"

    table = await slack.wait_for("chat.postMessage", _posted("Metrics immediately"))
    title = str(table.args["text"])
    assert "within thresholds" not in title
    assert "❔ inconclusive: 5xx rate, p95 latency: Cloud Monitoring unavailable" in title
    assert "answered 503" in title
    final = await slack.wait_for("chat.postMessage", _posted("Final verdict"))
    assert "*degraded*" in _text(final) and "metrics unknown" in _text(final)
    assert final.args["thread_ts"] == rollback.thread_ts
    await slack.wait_for("chat.update", lambda c: c.http_status == 200 and c.args.get("ts") ==
                         card.response["ts"] and "verification degraded" in _text(c)
                         and "metrics unknown" in _text(c))

    await slack.send_command(running_bot.events_url, "verify api", **ALICE)
    on_demand = await slack.wait_for("chat.postMessage", lambda c: c.http_status == 200 and bool(
        re.search(r"api: \*(verified|degraded|failed)\*", str(c.args.get("text", "")))),
        timeout=15)
    assert "api: *degraded*" in _text(on_demand) and "metrics unknown" in _text(on_demand)


async def test_verify_needs_a_known_service(running_bot: RunningBot) -> None:
    result = await running_bot.world.slack.send_command(
        running_bot.events_url, "verify payments", **ALICE)
    assert "Unknown service `payments`" in result.body


def _with_smoke_command(bot: RunningBot, code: str) -> None:
    deps = bot.runtime.deps
    api = deps.catalog.services["api"]
    smoke = SmokeCommand(command=[sys.executable, "-c", code], timeout_seconds=10)
    services = {**deps.catalog.services, "api": api.model_copy(update={"smoke_command": smoke})}
    deps.catalog = deps.catalog.model_copy(update={"services": services})


async def test_smoke_command_passes_and_its_last_lines_are_posted(
    running_bot: RunningBot,
) -> None:
    _with_smoke_command(running_bot, "print('smoke: 12 passed in 0.3s')")
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=20)
    assert rollback.state == State.SUCCEEDED
    slack = running_bot.world.slack
    await slack.wait_for("chat.postMessage", _posted("✅ smoke command"))
    await slack.wait_for("chat.postMessage", _posted("12 passed"))


async def test_failing_smoke_command_fails_the_rollback(running_bot: RunningBot) -> None:
    _with_smoke_command(running_bot, "import sys; print('FAILED test_leads'); sys.exit(1)")
    card = await _propose(running_bot)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=20)
    assert rollback.state == State.FAILED
    assert rollback.error and "smoke command" in rollback.error
    await running_bot.world.slack.wait_for("chat.postMessage", _posted("FAILED test_leads"))


async def test_metrics_url_source_scrapes_the_service(running_bot: RunningBot) -> None:
    deps = running_bot.runtime.deps
    api = deps.catalog.services["api"]
    verification = api.verification.model_copy(
        update={"metrics_source": "metrics_url", "scrape_interval_seconds": 1.0})
    services = {**deps.catalog.services,
                "api": api.model_copy(update={"verification": verification})}
    deps.catalog = deps.catalog.model_copy(update={"services": services})
    await asyncio.sleep(1.0)
    card = await _propose(running_bot)
    for _ in range(100):  # a person reads the card before confirming
        if (await running_bot.runtime.deps.changes.history("api", 1))[0].baseline:
            break
        await asyncio.sleep(0.05)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    rollback = await _analysed(running_bot, 2)
    baseline = Measurement.from_json(rollback.baseline or {})
    assert baseline.source == "metrics_url"
    assert baseline.error_rate is not None and baseline.error_rate > 0.05  # ~0.35
    last = Measurement.from_json({k: v for k, v in rollback.analysis[-1].items()
                                  if k != "index"})
    assert last.source == "metrics_url"
    assert last.error_rate is not None and last.error_rate < 0.1
    assert not running_bot.world.google.calls_to(LIST_TIME_SERIES)
