"""The services catalog (`rollbot.toml`): what rollbot may roll back, who may
approve it, how to verify it, and the customer's runbook checklists as data.

Validated at start; errors name the file and the key.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.catalog_flags import FlagGroup, KillSwitchGroup, slack_ids
from bot.masking import SECRET_ENV_PATTERNS_DEFAULT


class CatalogError(ValueError):
    """The catalog is missing or invalid; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GcpSection(_Strict):
    project: str = Field(min_length=1)
    region: str = Field(min_length=1)


class SlackSection(_Strict):
    incident_channel_pattern: str = r"^(inc|incident)[-_]"

    @field_validator("incident_channel_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class VerificationSection(_Strict):
    """Analysis as data (Argo Rollouts style): how long and how often to look."""

    window_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0
    interval_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_p95_latency_ms: Annotated[float, Field(gt=0)] = 1000.0
    # Deep verification: when to measure after the traffic change (runbook: metrics
    # within 5-10 minutes), where from, and how far back the baseline looks.
    measure_after_seconds: list[Annotated[float, Field(ge=0, le=3600)]] = Field(
        default_factory=lambda: [0.0, 120.0, 300.0, 600.0], max_length=10)
    metrics_source: Literal["auto", "cloud_monitoring", "metrics_url"] = "auto"
    scrape_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    baseline_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # A Confirm clicked before the baseline is measured waits this long for it (the
    # baseline is measured when the card is posted: Cloud Monitoring answers in about
    # a second, two scrapes of metrics_url take scrape_interval_seconds and more).
    baseline_wait_seconds: Annotated[float, Field(ge=0, le=120)] = 15.0
    # Below this many requests a rate or percentile is noise: judged inconclusive.
    min_requests: Annotated[int, Field(ge=0)] = 100
    # This many ERROR log entries after the change pass whatever the baseline: a
    # per-minute rate from one or two lines over a short window is noise.
    tolerated_log_errors: Annotated[int, Field(ge=0)] = 3


class GradualSection(_Strict):
    """A gradual rollback's steps (the runbook's "50/50 split, monitor for 5 minutes,
    then complete"), as data: the target's share at each step, how long each step is
    held, how often it is analysed, and how many failed analyses abort it."""

    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [50, 100], min_length=1, max_length=10)
    step_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    analysis_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    failure_limit: Annotated[int, Field(ge=1, le=100)] = 2

    @field_validator("steps")
    @classmethod
    def _rising_to_100(cls, steps: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"{steps}: each step must give the target more than the last")
        if steps[-1] != 100:
            raise ValueError(f"{steps}: the last step must be 100 (the rollback completes)")
        return steps


_REVISION_SUFFIX = re.compile(r"^(?:[a-z][-a-z0-9]*-)?(\d{5})-[a-z0-9]{3}$")


class BreakingSince(_Strict):
    """Targets numbered before `revision` cannot take today's traffic (a changed API
    contract, a webhook URL…): `reason` says why."""

    revision: str
    reason: str = Field(min_length=1)

    @field_validator("revision")
    @classmethod
    def _numbered(cls, value: str) -> str:
        if not _REVISION_SUFFIX.match(value):
            raise ValueError(f"{value!r}: expected a revision like \"00006-vex\" or its "
                             "full name")
        return value


class BlockersSection(_Strict):
    """The runbook's rollback blockers a plan checks before anyone may confirm
    (stop and escalate): each optional."""

    escalate_to: list[str] = Field(default_factory=list)  # Slack users or groups
    blocked_revisions: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list)  # full names or suffixes ("00012-old")
    vulnerable_images: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list)  # "repo/app:v1.2.0" or "sha256:…" (any repo) or "repo@sha256:…"
    breaking_since: BreakingSince | None = None
    warn_older_than_days: Annotated[int, Field(ge=1)] | None = None
    # The schema a revision knows: its label (or annotation) of this name, compared with
    # the serving revision's; or, with schema_query, the application's own migrations
    # table (one value: a version, compared with the target's label, or a time, compared
    # with the target's creation), read from the database in schema_database_url_env.
    schema_label: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    schema_query: Annotated[str, Field(min_length=1)] | None = None
    schema_database_url_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None

    @model_validator(mode="after")
    def _query_needs_its_database(self) -> BlockersSection:
        if (self.schema_query is None) != (self.schema_database_url_env is None):
            raise ValueError("schema_query and schema_database_url_env go together: the "
                             "query runs on the database named by that variable")
        return self

    _slack_ids = field_validator("escalate_to")(slack_ids)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r}: expected an http:// or https:// URL")
    return value


def _json_scalar(value: object) -> str | int | bool:
    if isinstance(value, str | int | bool):  # bool is an int; TOML floats are refused
        return value
    raise ValueError("expected a string, integer or boolean to compare the JSON field with")


JsonScalar = Annotated[str | int | bool, PlainValidator(_json_scalar)]
_JSON_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")  # "status", "checks.database"


class SmokeUrl(_Strict):
    """One smoke check: GET `url`; passes on `expect_status` (any 2xx when unset) and,
    when `expect_json` is set, on each field of the JSON body equal to its value
    (dotted keys reach into nested objects: "checks.database" = "ok")."""

    url: str
    expect_status: Annotated[int, Field(ge=100, le=599)] | None = None
    expect_json: dict[str, JsonScalar] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("expect_json", mode="before")
    @classmethod
    def _flatten(cls, value: object) -> object:
        """`{ checks.database = "ok" }` unquoted is a nested table in TOML: same path."""
        if not isinstance(value, dict):
            return value
        flat: dict[str, object] = {}
        for key, item in value.items():
            nested = cls._flatten(item) if isinstance(item, dict) and item else item
            if isinstance(nested, dict) and nested:
                flat.update({f"{key}.{sub}": v for sub, v in nested.items()})
            else:
                flat[key] = nested
        return flat

    @field_validator("expect_json")
    @classmethod
    def _paths(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one field, e.g. { status = \"ok\" }")
        bad = [key for key in value if not _JSON_PATH.match(key)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: expected a field name or a "
                             "dotted path like \"checks.database\"")
        return value

    def __str__(self) -> str:
        return self.url


def _smoke_entry(value: object) -> object:
    """A plain URL string is shorthand for `{ url = "..." }`."""
    if isinstance(value, str):
        return {"url": value}
    if isinstance(value, dict | SmokeUrl):
        return value
    raise ValueError("expected a URL string or a table "
                     "{ url = \"...\", expect_status = 200, expect_json = { status = \"ok\" } }")


class SmokeCommand(_Strict):
    """A smoke suite run as a process after a rollback (runbook: "pnpm run test:smoke").

    `command` is an argument list run without a shell; `cwd` is relative to rollbot's
    working directory."""

    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    cwd: str | None = Field(default=None, min_length=1)


class ServiceSection(_Strict):
    cloud_run_service: str = Field(min_length=1, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    region: str | None = None  # defaults to [gcp].region
    health_url: str | None = None
    ready_url: str | None = None
    # Each entry: "https://…" or { url = "https://…", expect_status = 200,
    # expect_json = { status = "ok", "checks.database" = "ok" } }; strings become SmokeUrl.
    smoke_urls: list[Annotated[SmokeUrl, BeforeValidator(_smoke_entry)]] = Field(
        default_factory=list)
    smoke_command: SmokeCommand | None = None
    metrics_url: str | None = None
    requesters: list[str] = Field(default_factory=list)  # empty: anyone in the channel
    approvers: list[str] = Field(default_factory=list)
    require_second_person: bool = True
    dependent_services: list[str] = Field(default_factory=list)
    verification: VerificationSection = Field(default_factory=VerificationSection)
    gradual: GradualSection = Field(default_factory=GradualSection)
    blockers: BlockersSection = Field(default_factory=BlockersSection)

    _slack_ids = field_validator("requesters", "approvers")(slack_ids)


class MaskingSection(_Strict):
    """Env vars whose plain values rollbot never shows: globs on the key, any case."""

    secret_env_patterns: list[str] = Field(
        default_factory=lambda: list(SECRET_ENV_PATTERNS_DEFAULT), min_length=1)

    @field_validator("secret_env_patterns")
    @classmethod
    def _globs(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not v.strip() or v != v.strip()]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: expected a glob on the env var "
                             "name without surrounding spaces, e.g. \"*SECRET*\"")
        return values


class RunbookSection(_Strict):
    """The customer's process, shipped as data operators edit."""

    pre_rollback_checklist: list[str] = Field(default_factory=list)
    post_rollback_checklist: list[str] = Field(default_factory=list)
    quick_reference: list[tuple[str, str]] = Field(default_factory=list)
    restrictions: list[str] = Field(default_factory=list)


class Catalog(_Strict):
    gcp: GcpSection
    slack: SlackSection = Field(default_factory=SlackSection)
    services: dict[str, ServiceSection] = Field(min_length=1)
    runbook: RunbookSection = Field(default_factory=RunbookSection)
    masking: MaskingSection = Field(default_factory=MaskingSection)
    flags: dict[str, FlagGroup] = Field(default_factory=dict)
    killswitches: dict[str, KillSwitchGroup] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _switch_groups_name_known_services(self) -> Catalog:
        for kind, groups in (("flags", self.flags), ("killswitches", self.killswitches)):
            for name, group in groups.items():
                if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
                    raise ValueError(f"{kind}.{name}: use lowercase letters, digits, - or _")
                unknown = [s for s in group.services if s not in self.services]
                if unknown:
                    raise ValueError(f"{kind}.{name}.services: {', '.join(unknown)} not in "
                                     f"[services] ({', '.join(sorted(self.services))})")
        return self

    @field_validator("services")
    @classmethod
    def _service_keys(cls, services: dict[str, ServiceSection]) -> dict[str, ServiceSection]:
        for key in services:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", key):
                raise ValueError(f"service key {key!r}: use lowercase letters, digits, - or _")
        return services

    def service(self, key: str) -> ServiceSection | None:
        return self.services.get(key)

    def region_of(self, key: str) -> str:
        return self.services[key].region or self.gcp.region

    def is_incident_channel(self, channel_name: str) -> bool:
        return re.search(self.slack.incident_channel_pattern, channel_name or "") is not None


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid services catalog"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {key}: {err['msg']}")
    return "\n".join(lines)


def parse_catalog(text: str, source: Path | str = "<string>") -> Catalog:
    path = Path(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(_format_errors(path, exc)) from exc


def load_catalog(path: Path | str) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CatalogError(
            f"{path}: services catalog not found (set ROLLBOT_CONFIG to its path)"
        ) from exc
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read services catalog: {exc.strerror}") from exc
    return parse_catalog(text, path)
