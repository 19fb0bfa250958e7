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

import bisect
import math
import os
import re
from collections.abc import Iterable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

# Sub-millisecond (an ack that rides on a cached answer) up to Slack's 3 s limit.
ACK_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0,
)
# Cloud Run calls: fast reads up to a long-running WaitOperation (10 s per wait).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)



class AckLatency(Collector):
    """`rollbot_ack_seconds`, counted in the memory of the process that acks and
    rendered by this collector. Only the listener acks, so the ack needs none of
    prometheus_client's multiprocess machinery, whose Histogram writes every
    observation to a memory-mapped file under a lock: 2-3 % of an ack's CPU under
    load, for a series no other process ever adds to."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self._bounds = tuple(buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is +Inf's
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket (le).
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterable[Metric]:
        buckets, cumulative = [], 0
        for bound, count in zip((*self._bounds, math.inf), self._counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), float(cumulative)))
        yield HistogramMetricFamily(
            "rollbot_ack_seconds", "Time to answer a Slack request on /slack/events.",
            buckets=buckets, sum_value=self._sum)


ACK_SECONDS = AckLatency(ACK_BUCKETS)
REGISTRY.register(ACK_SECONDS)
ROLLBACKS = Counter(
    "rollbot_rollbacks", "Rollbacks that reached an outcome.", ["outcome"],
    registry=REGISTRY)
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
        registry.register(ACK_SECONDS)  # in this process's memory, not in the files
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def metrics_handler(_: web.Request) -> web.Response:
    content, content_type = render()
    # aiohttp refuses a content_type with parameters; set the header whole.
    return web.Response(body=content, headers={"Content-Type": content_type})
