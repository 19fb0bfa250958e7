"""What a verification check found: the workflow's vocabulary for the serving
read-back, the HTTP checks (health, ready, smoke URLs) and the smoke command.

Integrations answer in their own types (`integrations.http_checks.HttpCheckOutcome`);
the core turns those into `CheckResult`s, which the thread, the summary and the
verdict read.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence


class CheckKind(enum.StrEnum):
    """What answered a check, and so what `CheckResult.status` means."""

    HTTP = "http"  # status: its HTTP status (None: no answer)
    COMMAND = "command"  # status: the command's exit code
    CLOUD_RUN = "cloud_run"  # a read of the service: no status, all in detail
    READ_BACK = "read_back"  # a store read back after a change (a flag, a kill switch)


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
    kind: CheckKind = CheckKind.HTTP


def checked_the_service(results: Sequence[CheckResult]) -> bool:
    """Whether any result looked at the service itself: Cloud Run serving what was
    asked proves the traffic moved, not that the service works."""
    return any(r.kind not in (CheckKind.CLOUD_RUN, CheckKind.READ_BACK) for r in results)


def all_passed(results: Sequence[CheckResult]) -> bool:
    """True when there was something to check and every check passed."""
    return bool(results) and all(r.ok for r in results)
