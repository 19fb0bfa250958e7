"""Prometheus metrics for rollbot itself, served on GET /metrics.

One registry of our own (not prometheus_client's global one), so importing a
library that registers collectors globally never changes what we expose, and
tests can read exactly these series.

- ``rollbot_rollbacks_total{outcome}``: rollbacks that reached an outcome
  (a final state: succeeded, failed, cancelled).
- ``rollbot_ack_seconds``: time to answer Slack on POST /slack/events, i.e. the
  ack latency as Slack sees it minus the network. Slack gives up at 3 s.
- ``rollbot_integration_call_seconds{system,method,outcome}``: each call to an
  outside system (one attempt; retries are separate observations).
- ``rollbot_integration_errors_total{system,method}``: the attempts that failed.
"""

from __future__ import annotations

import os
import re

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)

# Sub-millisecond (an ack that rides on a cached answer) up to Slack's 3 s limit.
ACK_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0,
)
# Cloud Run calls: fast reads up to a long-running WaitOperation (10 s per wait).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)

ROLLBACKS = Counter(
    "rollbot_rollbacks", "Rollbacks that reached an outcome.", ["outcome"],
    registry=REGISTRY)
ACK_SECONDS = Histogram(
    "rollbot_ack_seconds", "Time to answer a Slack request on /slack/events.",
    buckets=ACK_BUCKETS, registry=REGISTRY)
INTEGRATION_CALL_SECONDS = Histogram(
    "rollbot_integration_call_seconds", "One call (attempt) to an outside system.",
    ["system", "method", "outcome"], buckets=CALL_BUCKETS, registry=REGISTRY)
INTEGRATION_ERRORS = Counter(
    "rollbot_integration_errors", "Calls to an outside system that failed.",
    ["system", "method"], registry=REGISTRY)

# Label values come from enums and exception class names; anything else is
# folded into "other" so a bug can never blow up the series count.
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def _label(value: object) -> str:
    text = str(value)
    return text if _LABEL.match(text) else "other"


def observe_ack(seconds: float) -> None:
    ACK_SECONDS.observe(max(seconds, 0.0))


def observe_integration_call(system: str, method: str, seconds: float, outcome: str) -> None:
    """Record one call; any outcome but "ok" also counts as an error."""
    system, method, outcome = _label(system), _label(method), _label(outcome)
    INTEGRATION_CALL_SECONDS.labels(system, method, outcome).observe(max(seconds, 0.0))
    if outcome != "ok":
        INTEGRATION_ERRORS.labels(system, method).inc()


def cloud_run_call(method: str, seconds: float, outcome: str) -> None:
    """`GoogleCloudRun(on_call=...)` hook."""
    observe_integration_call("cloud_run", method, seconds, outcome)


def record_rollback_outcome(outcome: str) -> None:
    """Count a rollback that reached `outcome` (a `State`, which is a str, or its value).

    Call it once per rollback, where the state machine enters a final state.
    """
    ROLLBACKS.labels(_label(str(outcome).lower())).inc()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, for GET /metrics. With worker
    processes (bot/worker_processes.py) every process writes its values to files
    and this sums them, so the listener's /metrics also counts the workers' calls."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def metrics_handler(_: web.Request) -> web.Response:
    content, content_type = render()
    # aiohttp refuses a content_type with parameters; set the header whole.
    return web.Response(body=content, headers={"Content-Type": content_type})
