"""The app rollbot rolls back: every Cloud Run service in the World, served locally.

`/{service}/health`, `/ready`, `/api/v1/health` and `/metrics` behave as the
revision the World says is serving, so a rollback done through the (emulated)
Cloud Run API visibly heals the app. Traffic is simulated lazily: each request
(or `advance()`) replays the elapsed time at ~20 req/s with the serving
revision's error rate and latency, into Prometheus metrics, sampled error logs and
the World's per-revision request metrics (what Cloud Monitoring serves).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .world import UTC, EmuLogEntry, EmuRevision, World

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Latencies are log-normal; sigma fixes the spread so p95 matches the revision's.
LATENCY_SIGMA = 0.5
Z95 = 1.6449
# A long idle gap is replayed as at most this much traffic, to bound the work per request.
MAX_REPLAY_SECONDS = 3600.0
# (status, share of errors, log message)
ERROR_KINDS = (
    ("500", 0.7, "internal error: database connection pool exhausted"),
    ("503", 0.2, "service unavailable: dependency health check failed"),
    ("504", 0.1, "upstream timeout"),
)
ENDPOINTS = ("POST /api/v1/leads", "GET /api/v1/patients", "POST /api/v1/appointments")


def image_tag(image: str) -> str:
    """'repo/app:v1.3.0' -> 'v1.3.0'; a digest reference yields the digest."""
    if "@" in image:
        return image.rsplit("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


@dataclasses.dataclass
class _Simulation:
    """Per-service traffic state: its own registry, so services never share series."""

    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    last: float  # simulated time already replayed up to
    carry: float = 0.0  # fractional request left over from the last replay
    log_second: int = -1
    logs_this_second: int = 0
    simulated: int = 0

    @classmethod
    def create(cls, now: float) -> _Simulation:
        registry = CollectorRegistry()
        requests = Counter("http_requests", "HTTP requests served, by status code.",
                           ["status"], registry=registry)
        duration = Histogram("http_request_duration_seconds", "HTTP request latency.",
                             buckets=LATENCY_BUCKETS, registry=registry)
        # Both series exist from the first scrape, so rates over a window always compute.
        requests.labels(status="200")
        requests.labels(status="500")
        return cls(registry, requests, duration, last=now)


class TargetApp:
    def __init__(self, world: World, *, clock: Callable[[], float] = time.monotonic,
                 seed: int = 0, requests_per_second: float = 20.0,
                 max_error_logs_per_second: int = 5) -> None:
        self.world = world
        self._clock = clock
        self._offset = 0.0
        self.rng = random.Random(seed)
        self.requests_per_second = requests_per_second
        self.max_error_logs_per_second = max_error_logs_per_second
        self._sims: dict[str, _Simulation] = {}
        # Fault injection: a service named here answers /metrics with this status.
        self.metrics_faults: dict[str, int] = {}
        # Maps simulated time onto wall time for log and metric timestamps. A whole
        # second, so whole simulated seconds fall on whole per-second metric buckets.
        self._sim_epoch = self.now()
        self._wall_epoch = dt.datetime.now(UTC).replace(microsecond=0)
        for service in world.services:
            self._sim(service)  # traffic accumulates from construction, not first request
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    # --- lifecycle -------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0, *,
                    tick_seconds: float | None = None) -> None:
        """With ``tick_seconds`` traffic is simulated continuously (a live demo
        world): a traffic flip then splits metrics at the moment it happened,
        not at the next request to the app."""
        if tick_seconds:
            self._ticker = asyncio.create_task(self._tick(tick_seconds))
        app = web.Application()
        app.add_routes([web.get("/", self._index),
                        web.get("/_tags/{tagged}/{service}/{path:.*}", self._serve_tagged),
                        web.get("/{service}/{path:.*}", self._serve)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self._host = host
        self._port = int(self._runner.addresses[0][1])

    async def _tick(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.advance(0)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("TargetApp is not started")
        return f"http://{self._host}:{self._port}"

    def service_url(self, service: str) -> str:
        return f"{self.url}/{service}"

    # --- simulated time --------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move simulated time forward and replay it for every service right away,
        so traffic before and after a later traffic flip is attributed correctly."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds
        for service in list(self.world.services):
            self._simulate(service)

    def wall_time(self, at: float | None = None) -> dt.datetime:
        """The wall-clock time simulated time ``at`` (default: now) maps onto."""
        return self._wall_epoch + dt.timedelta(seconds=self._wall_offset(at))

    def _wall_offset(self, at: float | None = None) -> float:
        return (self.now() if at is None else at) - self._sim_epoch

    def metrics_text(self, service: str) -> str:
        self._simulate(service)
        return generate_latest(self._sim(service).registry).decode()

    def _sim(self, service: str) -> _Simulation:
        if service not in self._sims:
            self._sims[service] = _Simulation.create(self.now())
        return self._sims[service]

    def _serving(self, service: str) -> list[tuple[EmuRevision, int]]:
        svc = self.world.services[service]
        return [(svc.revisions[name], pct) for name, pct in svc.serving().items()
                if name in svc.revisions]

    def pick_revision(self, service: str) -> EmuRevision | None:
        """The revision that answers one request: weighted by traffic percent."""
        serving = self._serving(service)
        if not serving:
            return None
        if len(serving) == 1:
            return serving[0][0]
        revisions, weights = zip(*serving, strict=True)
        return self.rng.choices(revisions, weights=weights)[0]

    def _simulate(self, service: str) -> None:
        sim = self._sim(service)
        now = self.now()
        elapsed = min(now - sim.last, MAX_REPLAY_SECONDS)
        if elapsed <= 0:
            return
        sim.last = now
        total = elapsed * self.requests_per_second + sim.carry
        count = int(total)
        sim.carry = total - count
        serving = self._serving(service)
        if not serving or not count:
            return
        start = now - elapsed
        rng = self.rng
        revisions, weights = zip(*serving, strict=True)
        metrics = self.world.request_metrics
        wall_base = self._wall_epoch.timestamp()
        for i in range(count):
            at = start + elapsed * (i + 1) / count
            rev = revisions[0] if len(revisions) == 1 else rng.choices(revisions, weights)[0]
            median = rev.p95_latency_ms / 1000.0 / math.exp(Z95 * LATENCY_SIGMA)
            latency = rng.lognormvariate(math.log(median), LATENCY_SIGMA)
            sim.duration.observe(latency)
            ok = rng.random() >= rev.error_rate
            metrics.record(service, rev.name, wall_base + self._wall_offset(at),
                           "2xx" if ok else "5xx", latency * 1000.0)
            if ok:
                sim.requests.labels(status="200").inc()
                continue
            roll, status, message = rng.random(), ERROR_KINDS[-1][0], ERROR_KINDS[-1][2]
            for kind, share, text in ERROR_KINDS:
                if roll < share:
                    status, message = kind, text
                    break
                roll -= share
            sim.requests.labels(status=status).inc()
            self._maybe_log(sim, service, rev, at, status, message)
        sim.simulated += count
        metrics.prune()

    def _maybe_log(self, sim: _Simulation, service: str, rev: EmuRevision, at: float,
                   status: str, message: str) -> None:
        # Real apps log every 5xx; a bounded sample keeps the log store small.
        second = int(at)
        if second != sim.log_second:
            sim.log_second, sim.logs_this_second = second, 0
        if sim.logs_this_second >= self.max_error_logs_per_second:
            return
        sim.logs_this_second += 1
        endpoint = self.rng.choice(ENDPOINTS)
        self.world.logs.append(EmuLogEntry(
            timestamp=self.wall_time(at),
            severity="ERROR", message=f"{endpoint} {status}: {message} (revision {rev.name})",
            service=service, revision=rev.name,
        ))

    # --- HTTP ------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response({"services": sorted(self.world.services)})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        service, path = request.match_info["service"], request.match_info["path"].strip("/")
        if service not in self.world.services:
            return web.json_response(
                {"error": "not_found", "message": f"no Cloud Run service {service!r}"},
                status=404)
        self._simulate(service)
        if path == "metrics" and service in self.metrics_faults:
            return web.json_response({"error": "injected fault"},
                                     status=self.metrics_faults[service])
        if path == "metrics":
            return web.Response(body=generate_latest(self._sim(service).registry),
                                headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
        handler = {"health": self._health, "ready": self._ready,
                   "api/v1/health": self._api_health}.get(path)
        if handler is None:
            return web.json_response({"error": "not_found", "path": f"/{path}"}, status=404)
        rev = self.pick_revision(service)
        if rev is None:
            return web.json_response(
                {"status": "unavailable", "error": "no revision is serving traffic"}, status=503)
        status, body = handler(rev)
        return web.json_response(body, status=status, headers={"X-Serving-Revision": rev.name})

    async def _serve_tagged(self, request: web.Request) -> web.StreamResponse:
        """A tag's own URL (`/_tags/<tag>---<service>/<service>/<path>`): answered by the
        revision carrying the tag, whatever share of traffic it serves."""
        tag, _, service = request.match_info["tagged"].partition("---")
        path = request.match_info["path"].strip("/")
        svc = self.world.services.get(service)
        target = next((t for t in svc.traffic if t.tag == tag), None) if svc else None
        name = (svc.latest_ready_revision() if target and target.latest
                else target.revision if target else None) if svc else None
        rev = svc.revisions.get(name) if svc and name else None
        if rev is None or request.match_info["service"] != service:
            return web.json_response({"error": "not_found",
                                      "message": f"no traffic tag {tag!r} on {service!r}"},
                                     status=404)
        self._simulate(service)
        handler = {"health": self._health, "ready": self._ready,
                   "api/v1/health": self._api_health}.get(path)
        if handler is None:
            return web.json_response({"error": "not_found", "path": f"/{path}"}, status=404)
        status, body = handler(rev)
        return web.json_response(body, status=status, headers={"X-Serving-Revision": rev.name})

    @staticmethod
    def _health(rev: EmuRevision) -> tuple[int, dict[str, Any]]:
        if rev.healthy:
            return 200, {"status": "healthy", "revision": rev.name}
        return 503, {"status": "unhealthy", "revision": rev.name,
                     "error": "database connection pool exhausted"}

    @staticmethod
    def _ready(rev: EmuRevision) -> tuple[int, dict[str, Any]]:
        if rev.healthy:
            return 200, {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
        return 503, {"status": "not_ready",
                     "checks": {"database": "error: connection refused", "redis": "ok"}}

    @staticmethod
    def _api_health(rev: EmuRevision) -> tuple[int, dict[str, Any]]:
        version = image_tag(rev.image)
        if rev.healthy:
            return 200, {"status": "ok", "version": version, "revision": rev.name}
        return 500, {"status": "error", "version": version, "revision": rev.name,
                     "error": "internal server error"}
