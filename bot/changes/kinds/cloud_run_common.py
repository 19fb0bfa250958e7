"""What every Cloud Run kind shares: the service read started before the gate, the
read-back that is the first check, and how a failed update is said."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from bot.changes.kind import ChangeFailed
from bot.changes.model import Change
from bot.deps import Deps
from bot.messages.thread import traffic_failed
from bot.verification import serving_check
from integrations.cloud_run import CloudRunError, PendingRead, ServiceState
from integrations.http_checks import CheckResult


class ServiceRead:
    """Cloud Run's read of a service, started before the gate (the `Prefetch` of
    every Cloud Run kind): most of the wait before the update is this read."""

    def __init__(self, subject: str, pending: PendingRead) -> None:
        self.subject = subject
        self.pending = pending

    def cancel(self) -> None:
        self.pending.cancel()


def start_service_read(deps: Deps, subject: str) -> ServiceRead | None:
    """For Cloud Run kinds the subject is the service's catalog key."""
    service = deps.catalog.services.get(subject)
    if service is None:
        return None
    return ServiceRead(subject, deps.cloud_run.start_read(
        service.cloud_run_service, deps.catalog.region_of(subject)))


def pending_read_for(change: Change, prefetch: object) -> PendingRead | None:
    """The prefetched read if it is of this change's service, else None (cancelled)."""
    if not isinstance(prefetch, ServiceRead):
        return None
    if prefetch.subject != change.subject:
        prefetch.cancel()
        return None
    return prefetch.pending


def spec_service(change: Change) -> tuple[str, str]:
    """(Cloud Run service, region) the change was planned against."""
    return str(change.spec["cloud_run_service"]), str(change.spec["region"])


def before_traffic(change: Change) -> dict[str, int]:
    return {str(k): int(v) for k, v in (change.before.get("traffic") or {}).items()}


def after_traffic(change: Change) -> dict[str, int] | None:
    traffic = (change.after or {}).get("traffic")
    return None if traffic is None else {str(k): int(v) for k, v in traffic.items()}


async def read_state(deps: Deps, change: Change) -> tuple[ServiceState | None, str | None]:
    """The change's service as Cloud Run has it now, or (None, why not)."""
    service, region = spec_service(change)
    try:
        return await deps.cloud_run.get_service(service, region), None
    except CloudRunError as exc:
        return None, exc.message


async def read_serving(deps: Deps, change: Change) -> tuple[dict[str, int] | None, str | None]:
    state, error = await read_state(deps, change)
    return (None if state is None else state.serving()), error


async def read_back_check(deps: Deps, change: Change,
                          expected: Callable[[ServiceState], Mapping[str, int]]
                          ) -> CheckResult:
    """The serving check from a fresh read; `expected` from that read (e.g. LATEST)."""
    began = time.monotonic()
    state, error = await read_state(deps, change)
    elapsed_ms = (time.monotonic() - began) * 1000
    if state is None:
        return serving_check({}, None, before_traffic(change), elapsed_ms=elapsed_ms,
                             error=error)
    return serving_check(expected(state), state.serving(), before_traffic(change),
                         elapsed_ms=elapsed_ms)


async def update_failed(deps: Deps, change: Change, exc: CloudRunError) -> ChangeFailed:
    """Say exactly what failed and what serves now (read back, not assumed)."""
    now, _ = await read_serving(deps, change)
    before = before_traffic(change)
    service, region = spec_service(change)
    error = f"Cloud Run traffic change failed: {exc.message}"
    return ChangeFailed(
        error, report=traffic_failed(error, now, before=before, cloud_run_service=service,
                                     region=region),
        unchanged=now == before, after=None if now is None else {"traffic": now})
