"""The emulated Google Cloud project: one in-memory state shared by the emulators.

The gRPC emulator serves it through the real Google APIs, and the target app
behaves according to which revision it says is serving, so a rollback done
through the Cloud Run API visibly heals (or breaks) the target app.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from collections.abc import Iterable

UTC = dt.UTC


@dataclasses.dataclass
class EmuEnvVar:
    """One container env var: a plain value, or a Secret Manager reference."""

    name: str
    value: str = ""
    secret: str = ""  # set for a secret ref: short name or projects/P/secrets/S, as sent
    version: str = ""  # the secret version the ref reads ("latest", "2", ...)


@dataclasses.dataclass
class EmuSecretVolume:
    """A secret volume, and where the container mounts it."""

    name: str
    secret: str
    items: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, version)
    mount_path: str = ""  # "" when the container does not mount it


@dataclasses.dataclass
class EmuRevision:
    """A Cloud Run revision as the emulator knows it."""

    name: str  # short name, e.g. "medicalcor-api-00014-def"
    image: str
    create_time: dt.datetime
    creator: str = "deployer@medicalcor-prod.iam.gserviceaccount.com"
    ready: bool = True
    # How the target app behaves while this revision serves.
    healthy: bool = True
    error_rate: float = 0.001  # share of requests answered 5xx
    p95_latency_ms: float = 120.0
    # What it runs with (the service's template, when it is the newest revision).
    env: list[EmuEnvVar] = dataclasses.field(default_factory=list)
    secret_volumes: list[EmuSecretVolume] = dataclasses.field(default_factory=list)
    cpu: str = "1"
    memory: str = "512Mi"
    min_instances: int = 0
    max_instances: int = 10
    service_account: str = ""
    timeout_seconds: int = 300
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # user labels only
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    # Created with an explicit template.revision: the service's template then names it.
    named: bool = False

    def env_var(self, name: str) -> EmuEnvVar | None:
        return next((e for e in self.env if e.name == name), None)


@dataclasses.dataclass
class EmuTrafficTarget:
    revision: str | None  # None together with latest=True means "latest ready"
    percent: int
    latest: bool = False
    tag: str = ""


@dataclasses.dataclass
class EmuService:
    name: str  # short name, e.g. "medicalcor-api"
    revisions: dict[str, EmuRevision]
    traffic: list[EmuTrafficTarget]
    uri: str = ""
    generation: int = 1
    update_time: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(UTC))

    def latest_ready_revision(self) -> str | None:
        ready = [r for r in self.revisions.values() if r.ready]
        return max(ready, key=lambda r: r.create_time).name if ready else None

    def serving(self) -> dict[str, int]:
        """Revision name -> percent of traffic, resolving "latest" targets."""
        out: dict[str, int] = {}
        for target in self.traffic:
            name = self.latest_ready_revision() if target.latest else target.revision
            if name and target.percent:
                out[name] = out.get(name, 0) + target.percent
        return out


@dataclasses.dataclass
class EmuSecretVersion:
    version: str  # "1", "2", ...
    state: str = "ENABLED"  # ENABLED | DISABLED | DESTROYED
    create_time: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(UTC))


@dataclasses.dataclass
class EmuSecret:
    name: str  # short name, e.g. "API_SECRET_KEY"
    versions: dict[str, EmuSecretVersion]
    create_time: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(UTC))


@dataclasses.dataclass
class EmuLogEntry:
    timestamp: dt.datetime
    severity: str  # DEFAULT DEBUG INFO NOTICE WARNING ERROR CRITICAL ALERT EMERGENCY
    message: str
    service: str
    revision: str
    resource_type: str = "cloud_run_revision"


# Cloud Run's request_latencies is a distribution; the emulator buckets it like
# Distribution.BucketOptions.Exponential: bucket 0 is (-inf, scale), bucket i in
# 1..N is [scale*growth^(i-1), scale*growth^i), bucket N+1 is the overflow.
LATENCY_SCALE_MS = 1.0
LATENCY_GROWTH = 1.1
LATENCY_FINITE_BUCKETS = 120  # finite buckets reach ~91 s
METRICS_RETENTION_SECONDS = 2 * 3600
_PRUNE_EVERY_SECONDS = 60


def latency_bucket(ms: float) -> int:
    """Index of the exponential bucket ``ms`` falls in (see LATENCY_GROWTH)."""
    if ms < LATENCY_SCALE_MS:
        return 0
    index = int(math.log(ms / LATENCY_SCALE_MS) / math.log(LATENCY_GROWTH)) + 1
    return min(index, LATENCY_FINITE_BUCKETS + 1)


@dataclasses.dataclass
class RequestStats:
    """Requests of one response code class served by one revision in one second."""

    count: int = 0
    latency_sum_ms: float = 0.0
    latency_sum_sq_ms: float = 0.0
    latency_buckets: dict[int, int] = dataclasses.field(default_factory=dict)  # index -> n

    def add(self, latency_ms: float) -> None:
        self.count += 1
        self.latency_sum_ms += latency_ms
        self.latency_sum_sq_ms += latency_ms * latency_ms
        index = latency_bucket(latency_ms)
        self.latency_buckets[index] = self.latency_buckets.get(index, 0) + 1


# (revision, response code class) -> second -> stats
SeriesSeconds = dict[tuple[str, str], dict[int, RequestStats]]


class RequestMetrics:
    """What Cloud Run reports to Cloud Monitoring: per service, revision, response code
    class and wall-clock second, a request count and a latency histogram.

    A request at unix time t lands in the second ``ceil(t)``, i.e. the point covering
    (ceil(t) - 1, ceil(t)], so windows on whole seconds split traffic exactly. Memory
    is bounded: seconds older than ``retention`` behind the newest one are dropped.
    """

    def __init__(self, retention_seconds: int = METRICS_RETENTION_SECONDS) -> None:
        self.retention_seconds = retention_seconds
        self._services: dict[str, SeriesSeconds] = {}
        self._newest = 0
        self._pruned_at = 0

    def record(self, service: str, revision: str, at: float, code_class: str,
               latency_ms: float) -> None:
        second = math.ceil(at - 1e-9)  # float noise must not push t = 60.0 into 61
        if second <= self._newest - self.retention_seconds:
            return
        self._newest = max(self._newest, second)
        by_second = self._services.setdefault(service, {}).setdefault((revision, code_class), {})
        stats = by_second.get(second)
        if stats is None:
            stats = by_second[second] = RequestStats()
        stats.add(latency_ms)

    def prune(self) -> None:
        """Drop seconds beyond retention (a sweep at most once per simulated minute)."""
        if self._newest - self._pruned_at < _PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = self._newest
        cutoff = self._newest - self.retention_seconds
        for series in self._services.values():
            for key, by_second in list(series.items()):
                kept = {s: v for s, v in by_second.items() if s > cutoff}
                if kept:
                    series[key] = kept
                else:
                    del series[key]

    def series(self, service: str) -> SeriesSeconds:
        """(revision, response code class) -> second -> stats for one service (live view)."""
        return self._services.get(service, {})

    def services(self) -> list[str]:
        return sorted(self._services)

    def __len__(self) -> int:
        """How many (series, second) buckets are held."""
        return sum(len(b) for s in self._services.values() for b in s.values())


SEVERITY_ORDER = [
    "DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY",
]


@dataclasses.dataclass
class World:
    """Everything the emulated project holds."""

    project: str = "medicalcor-prod"
    region: str = "europe-west3"
    services: dict[str, EmuService] = dataclasses.field(default_factory=dict)
    secrets: dict[str, EmuSecret] = dataclasses.field(default_factory=dict)
    logs: list[EmuLogEntry] = dataclasses.field(default_factory=list)
    # Cloud Monitoring's built-in Cloud Run metrics, written by the target app.
    request_metrics: RequestMetrics = dataclasses.field(default_factory=RequestMetrics)
    # Where tagged traffic targets' URLs point ("": Cloud Run's https://<tag>---<host>).
    tag_url_base: str = ""

    # --- resource names as Google spells them -------------------------------
    @property
    def location_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def service_name(self, service: str) -> str:
        return f"{self.location_name}/services/{service}"

    def revision_name(self, service: str, revision: str) -> str:
        return f"{self.service_name(service)}/revisions/{revision}"

    def secret_name(self, secret: str) -> str:
        return f"projects/{self.project}/secrets/{secret}"

    # --- helpers used by the target app and tests ---------------------------
    def serving(self, service: str) -> dict[str, int]:
        return self.services[service].serving()

    def primary_revision(self, service: str) -> EmuRevision | None:
        """The revision with the largest traffic share (what a request most likely hits)."""
        svc = self.services.get(service)
        if svc is None:
            return None
        serving = svc.serving()
        if not serving:
            return None
        name = max(serving.items(), key=lambda kv: kv[1])[0]
        return svc.revisions.get(name)

    def add_log(self, service: str, severity: str, message: str,
                when: dt.datetime | None = None) -> None:
        rev = self.primary_revision(service)
        self.logs.append(EmuLogEntry(
            timestamp=when or dt.datetime.now(UTC), severity=severity, message=message,
            service=service, revision=rev.name if rev else "",
        ))


def _revisions(service: str, specs: Iterable[tuple[str, str, str, bool]],
               start: dt.datetime) -> dict[str, EmuRevision]:
    out: dict[str, EmuRevision] = {}
    for i, (suffix, tag, creator, healthy) in enumerate(specs):
        name = f"{service}-{suffix}"
        out[name] = EmuRevision(
            name=name,
            image=f"europe-west3-docker.pkg.dev/medicalcor-prod/apps/{service}:{tag}",
            create_time=start + dt.timedelta(days=i, hours=3 * i),
            creator=creator,
            healthy=healthy,
            error_rate=0.001 if healthy else 0.35,
            p95_latency_ms=120.0 if healthy else 2400.0,
        )
    return out


def default_world(*, bad_latest: bool = False) -> World:
    """The fixture: medicalcor-api and medicalcor-web, three revisions each,
    the newest serving 100%. With ``bad_latest`` the newest revisions are broken
    (the demo incident: /health fails until a rollback)."""
    world = World()
    start = dt.datetime(2024, 12, 5, 12, 0, tzinfo=UTC)
    people = itertools.cycle(["ana@medicalcor.com", "bogdan@medicalcor.com", "ci@medicalcor.com"])
    for service, suffixes in (
        ("medicalcor-api", ["00013-ghi", "00014-def", "00015-abc"]),
        ("medicalcor-web", ["00012-xyz", "00013-pqr", "00014-abc"]),
    ):
        tags = ["v1.2.1", "v1.2.2", "v1.3.0"]
        specs = [
            (suffix, tag, next(people), not (bad_latest and i == len(suffixes) - 1))
            for i, (suffix, tag) in enumerate(zip(suffixes, tags, strict=True))
        ]
        revisions = _revisions(service, specs, start)
        newest = max(revisions.values(), key=lambda r: r.create_time).name
        world.services[service] = EmuService(
            name=service,
            revisions=revisions,
            traffic=[EmuTrafficTarget(revision=newest, percent=100)],
            uri=f"https://{service}-abc123-ey.a.run.app",
        )
    world.secrets["API_SECRET_KEY"] = EmuSecret(
        name="API_SECRET_KEY",
        versions={
            "1": EmuSecretVersion("1", state="DISABLED", create_time=start),
            "2": EmuSecretVersion("2", create_time=start + dt.timedelta(days=1)),
        },
    )
    for svc in world.services.values():
        _configure(svc)
    return world


def _configure(svc: EmuService) -> None:
    """Realistic run config, differing across revisions so a config diff shows something:
    oldest, middle, newest revision of each default service."""
    account = f"{svc.name}@medicalcor-prod.iam.gserviceaccount.com"
    oldest, middle, newest = sorted(svc.revisions.values(), key=lambda r: r.create_time)
    for rev, log_level, feature_x, secret_version in (
        (oldest, "info", None, "1"),
        (middle, "info", "false", "2"),
        (newest, "debug", "true", "2"),
    ):
        rev.env = [EmuEnvVar("LOG_LEVEL", log_level)]
        if feature_x is not None:
            rev.env.append(EmuEnvVar("FEATURE_X", feature_x))
        rev.service_account = account
        rev.labels = {"team": "platform"}
        rev.annotations = {"run.googleapis.com/startup-cpu-boost": "true"}
        if svc.name == "medicalcor-api":
            rev.env.append(EmuEnvVar("API_SECRET_KEY", secret="API_SECRET_KEY",
                                     version=secret_version))
            # A plain value under a secret-looking name: rollbot must mask it everywhere.
            rev.env.append(EmuEnvVar("WEBHOOK_TOKEN", f"whk_live_{rev.name[-9:]}_s3cr3t"))
            rev.secret_volumes = [EmuSecretVolume(
                "api-secret", "API_SECRET_KEY", [("key", secret_version)], "/secrets/api")]
    newest.memory = "1Gi"
    newest.max_instances = 20
