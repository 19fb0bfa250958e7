"""What every Cloud Run kind shares: the service read started before the gate, what a
plan records of the service (`before`) and how drift is told from it, the traffic
rule of a new revision, read-backs, and how a failed update is said."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.changes.kind import ChangeFailed, PlanDrift
from bot.changes.model import Change
from bot.checks import CheckResult
from bot.deps import Deps
from bot.messages.thread import traffic_failed
from bot.plans import CheckItem, RevisionFacts, primary_revision, traffic_plain
from bot.verification import serving_check
from integrations.cloud_run import RevisionConfig, ServiceSnapshot, ServiceState
from integrations.google_retry import GoogleCallError

__all__ = ["RevisionConfig", "TemplateWords"]


@dataclasses.dataclass(frozen=True)
class TemplateWords:
    """How a template kind's card names its change."""

    headline: str
    action: str
    changes: tuple[str, ...]
    checked: tuple[CheckItem, ...]
    command_flags: str  # for `gcloud run services update SERVICE --region=R <flags>`
    question: str


class ServiceRead:
    """Cloud Run's read of a service, started before the gate (the `Prefetch` of every
    Cloud Run kind): most of the wait before the update is this read."""

    def __init__(self, subject: str, task: asyncio.Future[ServiceSnapshot]) -> None:
        self.subject = subject
        self.task = task
        # An unused read that failed must not be logged as never retrieved.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def cancel(self) -> None:
        self.task.cancel()


def start_snapshot_read(deps: Deps, subject: str) -> ServiceRead | None:
    """For Cloud Run kinds the subject is the service's catalog key."""
    service = deps.catalog.services.get(subject)
    if service is None:
        return None
    return ServiceRead(subject, asyncio.ensure_future(deps.cloud_run.read_service(
        service.cloud_run_service, deps.catalog.region_of(subject))))


async def read_for(deps: Deps, change: Change, prefetch: object) -> ServiceSnapshot:
    """The prefetched read if it is of this change's subject, else a fresh one."""
    if isinstance(prefetch, ServiceRead):
        if prefetch.subject == change.subject:
            return await prefetch.task
        prefetch.cancel()
    service, region = spec_service(change)
    return await deps.cloud_run.read_service(service, region)


def spec_service(change: Change) -> tuple[str, str]:
    """(Cloud Run service, region) the change was planned against."""
    return str(change.spec["cloud_run_service"]), str(change.spec["region"])


async def primary_facts(deps: Deps, snapshot: ServiceSnapshot,
                        region: str) -> RevisionFacts | None:
    primary = primary_revision(snapshot.state)
    if primary is None:
        return None
    return RevisionFacts.of(await deps.cloud_run.get_revision(
        snapshot.state.name, region, primary))


def on_latest(state: ServiceState) -> bool:
    return any(t.latest and t.percent == 100 for t in state.traffic)


def traffic_rule(snapshot: ServiceSnapshot, new_revision: str) -> dict[str, Any]:
    """A new revision gets 100% by name (the service stays pinned), or LATEST 100% if
    the service was on LATEST: `update_service`'s traffic arguments."""
    if on_latest(snapshot.state):
        return {"to_latest": True}
    return {"traffic": {new_revision: 100}}


def config_digest(config: RevisionConfig) -> str:
    """A fingerprint of what a template runs (image, env, secret references): drift is
    told by it without storing any value, secret or not."""
    env = [[e.name, e.value, e.secret.secret if e.secret else None,
            e.secret.version if e.secret else None] for e in config.env]
    volumes = [[v.volume, v.secret, list(v.versions)] for v in config.secret_volumes]
    raw = json.dumps([config.image, env, volumes], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def before_of(snapshot: ServiceSnapshot) -> dict[str, Any]:
    """What a plan records of the service: what served, and what it ran."""
    return {"traffic": snapshot.state.serving(), "latest": on_latest(snapshot.state),
            "image": snapshot.template.image, "config": config_digest(snapshot.template)}


def before_traffic(change: Change) -> dict[str, int]:
    return {str(k): int(v) for k, v in (change.before.get("traffic") or {}).items()}


def after_traffic(change: Change) -> dict[str, int] | None:
    traffic = (change.after or {}).get("traffic")
    return None if traffic is None else {str(k): int(v) for k, v in traffic.items()}


def drift(change: Change, snapshot: ServiceSnapshot, *, template: bool) -> str | None:
    """What moved since the plan, in plain words; None if nothing that matters did
    (an etag-only change, e.g. a label edit, is not drift)."""
    planned, now = before_traffic(change), snapshot.state.serving()
    if now != planned:
        return (f"what serves changed since the plan: now {traffic_plain(now)}, "
                f"the plan showed {traffic_plain(planned)}")
    if template and change.before.get("config") not in (None,
                                                        config_digest(snapshot.template)):
        if snapshot.template.image != change.before.get("image"):
            return (f"the service's image changed since the plan: now "
                    f"{snapshot.template.image}, the plan showed {change.before.get('image')}")
        return "the service's env or secret references changed since the plan"
    return None


_UPDATE_ATTEMPTS = 2  # a stale etag (someone else's edit) is re-read and re-checked once


async def update_once(deps: Deps, change: Change, prefetch: object, *,
                      applied: Callable[[ServiceSnapshot], bool],
                      drifted: Callable[[ServiceSnapshot], str | None],
                      send: Callable[[ServiceSnapshot], Awaitable[str]]) -> None:
    """Read (the prefetch first), check, update, wait: what every Cloud Run kind's
    apply does. `applied`: it went through already (a change resumed after a crash);
    `drifted`: what moved since the plan (PlanDrift, nothing changed); `send`: the
    UpdateService, its operation's name. A stale etag (ABORTED: someone's edit in
    between) is read and checked again, once."""
    for attempt in range(_UPDATE_ATTEMPTS):
        snapshot = await read_for(deps, change, prefetch if attempt == 0 else None)
        if applied(snapshot):
            return
        moved = drifted(snapshot)
        if moved:
            raise PlanDrift(moved)
        try:
            operation = await send(snapshot)
        except GoogleCallError as exc:
            if exc.kind == "conflict" and attempt + 1 < _UPDATE_ATTEMPTS:
                continue
            raise
        await deps.cloud_run.wait_operation(operation)
        return


async def validated(deps: Deps, spec: Mapping[str, Any], what: str,
                    update: Callable[[ServiceSnapshot], Mapping[str, Any]]) -> str:
    """A dry run's question to Cloud Run: the same UpdateService with validate_only
    (`update`: its arguments for the service as read now), and what Cloud Run said."""
    try:
        snapshot = await deps.cloud_run.read_service(str(spec["cloud_run_service"]),
                                                     str(spec["region"]))
        await deps.cloud_run.update_service(snapshot, validate_only=True, **update(snapshot))
    except GoogleCallError as exc:
        return f"Cloud Run refused it: {exc.message}"
    return f"Cloud Run accepted the {what} (validated only, nothing changed)."


async def read_state(deps: Deps, change: Change) -> tuple[ServiceState | None, str | None]:
    """The change's service as Cloud Run has it now, or (None, why not)."""
    service, region = spec_service(change)
    try:
        return await deps.cloud_run.get_service(service, region), None
    except GoogleCallError as exc:
        return None, exc.message


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


def failed_check(check: CheckResult, why: str) -> CheckResult:
    return dataclasses.replace(check, ok=False, detail=f"{check.detail}; but {why}")


async def update_failed(deps: Deps, change: Change, exc: GoogleCallError,
                        what: str = "Cloud Run traffic change") -> ChangeFailed:
    """Say exactly what failed and what serves now (read back, not assumed)."""
    state, _ = await read_state(deps, change)
    now = None if state is None else state.serving()
    before = before_traffic(change)
    service, region = spec_service(change)
    error = f"{what} failed: {exc.message}"
    return ChangeFailed(
        error, report=traffic_failed(error, now, before=before, cloud_run_service=service,
                                     region=region),
        unchanged=now == before, after=None if now is None else {"traffic": now})
