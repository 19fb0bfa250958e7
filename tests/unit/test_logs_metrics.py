"""JSON logs in Cloud Logging's shape, trace correlation, secret redaction, and
rollbot's own Prometheus metrics (and the HTTP routes that serve them)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_bolt.response import BoltResponse

from bot import metrics
from bot.app import build_web_app
from bot.logs import (
    CloudLoggingFormatter,
    RedactSecrets,
    parse_trace_headers,
    redact,
    register_secret_values,
    trace_context,
    url_passwords,
)

TRACE_ID = "105445aa7843bc8bf206b12000100000"
BOT_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"


class Capture:
    """A logger whose one handler formats like production (filter on the handler)."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatter)
        handler.addFilter(RedactSecrets())
        self.logger = logging.getLogger(f"rollbot.test.{id(self)}")
        self.logger.handlers[:] = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)

    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line]


@pytest.fixture
def json_log() -> Iterator[Capture]:
    yield Capture(CloudLoggingFormatter(project="medicalcor-prod"))


# ---- JSON format -----------------------------------------------------------------

def test_json_lines_have_cloud_logging_fields(json_log: Capture) -> None:
    json_log.logger.info("rollback %s confirmed by %s", 42, "U0BOB")
    json_log.logger.warning("slow")
    json_log.logger.debug("details")
    info, warning, debug = json_log.entries()
    assert info["message"] == "rollback 42 confirmed by U0BOB"
    assert (info["severity"], warning["severity"], debug["severity"]) == (
        "INFO", "WARNING", "DEBUG")
    assert info["logger"] == json_log.logger.name
    assert info["time"].endswith("Z")
    stamp = dt.datetime.fromisoformat(info["time"])
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60
    assert info["logging.googleapis.com/sourceLocation"]["function"] == (
        "test_json_lines_have_cloud_logging_fields")
    assert "logging.googleapis.com/trace" not in info


def test_exception_text_is_part_of_the_message(json_log: Capture) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        json_log.logger.exception("job failed")
    (entry,) = json_log.entries()
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("job failed\nTraceback (most recent call last):")
    assert "RuntimeError: boom" in entry["message"]


def test_extra_json_fields_are_merged(json_log: Capture) -> None:
    json_log.logger.info("done", extra={"json_fields": {"change_id": 7, "severity": "X"}})
    (entry,) = json_log.entries()
    assert entry["change_id"] == 7
    assert entry["severity"] == "INFO"  # extras never override the standard fields


def test_trace_field_when_the_context_var_is_set(json_log: Capture) -> None:
    token = trace_context.set(parse_trace_headers(f"{TRACE_ID}/1;o=1"))
    try:
        json_log.logger.info("inside a request")
    finally:
        trace_context.reset(token)
    json_log.logger.info("outside")
    inside, outside = json_log.entries()
    assert inside["logging.googleapis.com/trace"] == (
        f"projects/medicalcor-prod/traces/{TRACE_ID}")
    assert inside["logging.googleapis.com/spanId"] == "0000000000000001"
    assert inside["logging.googleapis.com/trace_sampled"] is True
    assert "logging.googleapis.com/trace" not in outside


def test_trace_project_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = Capture(CloudLoggingFormatter())
    token = trace_context.set(parse_trace_headers(TRACE_ID))
    try:
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        capture.logger.info("no project: no trace field")
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p-1")
        capture.logger.info("traced")
    finally:
        trace_context.reset(token)
    without, traced = capture.entries()
    assert "logging.googleapis.com/trace" not in without
    assert traced["logging.googleapis.com/trace"] == f"projects/p-1/traces/{TRACE_ID}"


@pytest.mark.parametrize(("cloud", "traceparent", "expected"), [
    (f"{TRACE_ID}/12345;o=0", None, (TRACE_ID, "0000000000003039", False)),
    (TRACE_ID.upper(), None, (TRACE_ID, "", False)),
    (None, f"00-{TRACE_ID}-00f067aa0ba902b7-01", (TRACE_ID, "00f067aa0ba902b7", True)),
    ("garbage", None, None),
    (None, None, None),
])
def test_parse_trace_headers(
    cloud: str | None, traceparent: str | None, expected: tuple[str, str, bool] | None
) -> None:
    parsed = parse_trace_headers(cloud, traceparent)
    got = None if parsed is None else (parsed.trace_id, parsed.span_id, parsed.sampled)
    assert got == expected


class LoggingBolt:
    """Enough of AsyncApp for build_web_app: logs a line and answers with the trace id
    it sees, as a listener handling the request would."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    async def async_dispatch(self, _: Any) -> BoltResponse:
        self.capture.logger.info("handling")
        current = trace_context.get()
        return BoltResponse(status=200, body=current.trace_id if current else "-")


async def test_slack_events_log_lines_carry_the_requests_trace() -> None:
    capture = Capture(CloudLoggingFormatter(project="proj"))

    async def readiness() -> dict[str, str]:
        return {}

    app = build_web_app(LoggingBolt(capture), readiness)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        traced = await client.post("/slack/events", data=b"{}", headers={
            "Content-Type": "application/json", "X-Cloud-Trace-Context": f"{TRACE_ID}/7;o=1"})
        assert await traced.text() == TRACE_ID
        w3c = await client.post("/slack/events", data=b"{}", headers={
            "Content-Type": "application/json",
            "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
        assert await w3c.text() == TRACE_ID
        plain = await client.post("/slack/events", data=b"{}",
                                  headers={"Content-Type": "application/json"})
        assert await plain.text() == "-"
    first, second, third = capture.entries()
    assert first["logging.googleapis.com/trace"] == f"projects/proj/traces/{TRACE_ID}"
    assert second["logging.googleapis.com/trace"] == f"projects/proj/traces/{TRACE_ID}"
    assert "logging.googleapis.com/trace" not in third
    assert trace_context.get() is None  # reset after each request


# ---- redaction -----------------------------------------------------------------------

@pytest.mark.parametrize("secret", [
    BOT_TOKEN,
    "xoxp-1111-2222-3333-abcdef",
    "xapp-1-A0123-4567-deadbeef",
    "xoxe.xoxp-1-Mi0yLTEyMzQ",
    "xoxa-2-abc",
    "xoxr-refresh-123",
    "xoxs-legacy-1",
])
def test_slack_tokens_are_redacted(json_log: Capture, secret: str) -> None:
    json_log.logger.info("calling Slack with %s", secret)
    json_log.logger.info(f"inline {secret}.")
    for entry in json_log.entries():
        assert secret.split("-", 1)[1] not in entry["message"]
        assert "[redacted]" in entry["message"]


def test_response_urls_are_redacted() -> None:
    url = "https://hooks.slack.com/commands/T0001/123456/AbCdEfSecretPart"
    assert redact(f"posting to {url} failed") == (
        "posting to https://hooks.slack.com/commands/[redacted] failed")


def test_registered_secret_values_are_redacted_in_messages_and_exceptions() -> None:
    signing_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    register_secret_values(signing_secret, "", "short")
    for formatter in (CloudLoggingFormatter(project="p"), logging.Formatter("%(message)s")):
        capture = Capture(formatter)
        capture.logger.info("secret is %s", signing_secret)
        try:
            raise ValueError(f"bad signature with {signing_secret} and {BOT_TOKEN}")
        except ValueError:
            capture.logger.exception("verification failed for %s", BOT_TOKEN)
        out = capture.text()
        assert signing_secret not in out
        assert BOT_TOKEN not in out
        assert BOT_TOKEN.split("-", 1)[1] not in out
        assert "ValueError: bad signature with [redacted] and xoxb-[redacted]" in out
        assert "Traceback" in out
    # Too short to register: ordinary words stay readable.
    assert redact("a short word") == "a short word"


def test_url_passwords_for_registration() -> None:
    assert url_passwords(
        "postgresql://rollbot:p%40ss-w0rd-long@10.0.0.3:5432/rollbot",
        "redis://:redis-auth-string@10.0.0.4:6379/0",
        "host=10.0.0.3 user=rollbot password='kv secret' dbname=rollbot",
        "postgresql://rollbot@10.0.0.3/rollbot",
    ) == ("p%40ss-w0rd-long", "p@ss-w0rd-long", "redis-auth-string", "redis-auth-string",
          "kv secret", "kv secret")


def test_a_broken_format_string_still_reaches_the_handler(json_log: Capture) -> None:
    filt = RedactSecrets()
    record = json_log.logger.makeRecord(
        json_log.logger.name, logging.INFO, __file__, 1, "needs %s %s", ("one",), None)
    assert filt.filter(record) is True  # logging's handleError reports it, not us


# ---- metrics -----------------------------------------------------------------------

def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_render_after_observations() -> None:
    before_ok = sample("rollbot_rollbacks_total", outcome="succeeded")
    before_err = sample("rollbot_integration_errors_total", system="cloud_run",
                        method="UpdateService")
    before_acks = sample("rollbot_ack_seconds_count")

    metrics.observe_ack(0.0004)
    metrics.observe_ack(1.2)
    metrics.cloud_run_call("GetService", 0.02, "ok")
    metrics.cloud_run_call("UpdateService", 0.5, "ServiceUnavailable")
    metrics.observe_integration_call("slack", "chat.postMessage", 0.1, "ok")
    metrics.record_rollback_outcome("succeeded")
    metrics.record_rollback_outcome("FAILED")
    metrics.record_rollback_outcome("no way {this} is a label")

    content, content_type = metrics.render()
    text = content.decode()
    assert content_type.startswith("text/plain")
    for name in ("rollbot_rollbacks_total", "rollbot_ack_seconds_bucket",
                 "rollbot_integration_call_seconds_bucket", "rollbot_integration_errors_total"):
        assert name in text
    assert sample("rollbot_rollbacks_total", outcome="succeeded") == before_ok + 1
    assert sample("rollbot_rollbacks_total", outcome="failed") >= 1
    assert sample("rollbot_rollbacks_total", outcome="other") >= 1
    assert sample("rollbot_ack_seconds_count") == before_acks + 2
    assert sample("rollbot_ack_seconds_bucket", le="0.0005") >= 1
    assert sample("rollbot_integration_errors_total", system="cloud_run",
                  method="UpdateService") == before_err + 1
    assert sample("rollbot_integration_errors_total", system="slack",
                  method="chat.postMessage") == 0
    assert sample("rollbot_integration_call_seconds_count", system="cloud_run",
                  method="GetService", outcome="ok") >= 1


def test_ack_latency_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    from prometheus_client import CollectorRegistry

    acks = metrics.AckLatency((0.001, 0.01))
    registry = CollectorRegistry()
    registry.register(acks)
    for seconds in (0.001, 0.0015, 0.01, 5.0):
        acks.observe(seconds)

    def bucket(le: str) -> float | None:
        return registry.get_sample_value("rollbot_ack_seconds_bucket", {"le": le})

    assert (bucket("0.001"), bucket("0.01"), bucket("+Inf")) == (1, 3, 4)
    assert registry.get_sample_value("rollbot_ack_seconds_count") == 4
    assert registry.get_sample_value("rollbot_ack_seconds_sum") == pytest.approx(5.0125)


def test_acks_render_beside_the_worker_processes_series(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
) -> None:
    """With worker processes (multiprocess files), /metrics still shows the acks,
    which only the listener's memory holds."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics.observe_ack(0.0004)
    count = sample("rollbot_ack_seconds_count")
    text = metrics.render()[0].decode()
    assert f"rollbot_ack_seconds_count {count}" in text
    assert 'rollbot_ack_seconds_bucket{le="0.0005"}' in text


def test_own_registry_not_the_global_one() -> None:
    from prometheus_client import REGISTRY as GLOBAL

    assert metrics.REGISTRY is not GLOBAL
    assert GLOBAL.get_sample_value("rollbot_ack_seconds_count") is None


def test_rollback_states_count_by_value() -> None:
    from bot.changes.model import State

    before = sample("rollbot_rollbacks_total", outcome="cancelled")
    metrics.record_rollback_outcome(State.CANCELLED)
    assert sample("rollbot_rollbacks_total", outcome="cancelled") == before + 1


class StubBolt:
    """Enough of AsyncApp for build_web_app: answers every Slack request with 200."""

    async def async_dispatch(self, _: Any) -> BoltResponse:
        return BoltResponse(status=200, body="")


async def test_app_serves_metrics_and_times_slack_acks() -> None:
    async def readiness() -> dict[str, str]:
        return {"database": "ok"}

    app = build_web_app(StubBolt(), readiness)  # type: ignore[arg-type]
    before = sample("rollbot_ack_seconds_count")
    async with TestClient(TestServer(app)) as client:
        ack = await client.post("/slack/events", data=b"{}",
                                headers={"Content-Type": "application/json"})
        assert ack.status == 200
        health = await client.get("/healthz")
        assert health.status == 200
        scraped = await client.get("/metrics")
        assert scraped.status == 200
        assert scraped.headers["Content-Type"].startswith("text/plain")
        text = await scraped.text()
    assert sample("rollbot_ack_seconds_count") == before + 1  # /healthz is not an ack
    assert "rollbot_ack_seconds_bucket" in text
