"""The services catalog (`rollbot.toml`): what rollbot may roll back, who may
approve it, how to verify it, and the customer's runbook checklists as data.

Validated at start; errors name the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")  # user (U/W) or user group (S)


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


class ServiceSection(_Strict):
    cloud_run_service: str = Field(min_length=1, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    region: str | None = None  # defaults to [gcp].region
    health_url: str | None = None
    ready_url: str | None = None
    smoke_urls: list[str] = Field(default_factory=list)
    metrics_url: str | None = None
    requesters: list[str] = Field(default_factory=list)  # empty: anyone in the channel
    approvers: list[str] = Field(default_factory=list)
    require_second_person: bool = True
    dependent_services: list[str] = Field(default_factory=list)
    verification: VerificationSection = Field(default_factory=VerificationSection)

    @field_validator("requesters", "approvers")
    @classmethod
    def _slack_ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not SLACK_ID.match(v)]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: expected Slack user ids (U…/W…) or user-group ids (S…)"
            )
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
