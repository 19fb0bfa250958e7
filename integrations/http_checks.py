"""HTTP checks of a target service: /health, /ready (with its dependency checks),
smoke URLs. Returns results; never builds Slack messages."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str  # "health", "ready", "smoke: /api/v1/health"
    url: str
    ok: bool
    status: int | None  # HTTP status, None when no answer
    detail: str  # short, human: "200 healthy", "503 unhealthy", "timeout after 5s"
    elapsed_ms: float
    attempts: int = 1
    dependencies: dict[str, str] = dataclasses.field(default_factory=dict)  # /ready "checks"
