"""Gradual: a traffic rollback in steps (the runbook's "Gradual Rollback (If
Uncertain)": a 50/50 split, watched, then all the way).

Never requested by itself: a traffic plan card offers it (its Gradual button, or
`/rollback <service> <revision> --gradual`), and the change is confirmed as this kind.
Each step sets the split (bot.changes.rollout.split_for) and tags the target
(`rollbot-target`), so its own URL is checked apart from the others; completing or
restoring removes the tag. The rollout itself (holding, analysing, moving on) is the
workflow's (bot/workflow/rollout.py).

spec:   as traffic's: {cloud_run_service, region, traffic: {target: 100}}
before: {traffic: {revision: percent}, latest: bool}    what served at planning time
after:  {traffic: {revision: percent}}                   read back after each move
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from bot.catalog import Catalog
from bot.changes.kind import (
    Applied,
    ChangeRequest,
    PlannedChange,
    Prefetch,
    StepObservation,
    Usage,
)
from bot.changes.kinds import cloud_run_common as common
from bot.changes.kinds.traffic import TrafficKind
from bot.changes.model import Change
from bot.changes.rollout import RolloutPolicy, split_for
from bot.checks import CheckResult
from bot.deps import Deps
from bot.ids import KindName
from bot.measure import measure_split
from bot.messages.measurements import console_link
from bot.parsing import CommandError
from bot.plans import PlanError
from bot.verification import CheckSpec, http_result, serving_check
from integrations.cloud_run import ServiceSnapshot, ServiceState
from integrations.google_retry import GoogleCallError

TAG = "rollbot-target"


class GradualKind:
    name = KindName.GRADUAL.value
    options: Mapping[str, bool] = MappingProxyType({})  # `--gradual` is traffic's

    def usage(self) -> Sequence[Usage]:
        return ()

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | CommandError | None:
        return None  # proposed as a traffic rollback, confirmed as this kind

    async def plan(self, deps: Deps, request: ChangeRequest) -> PlannedChange | PlanError:
        return await TrafficKind().plan(deps, request)

    async def dry_run(self, deps: Deps, planned: PlannedChange) -> str | None:
        first = deps.catalog.services[planned.plan.service].gradual.steps[0]
        target = _target_of(planned.spec)
        return await common.validated(
            deps, planned.spec, f"first step ({first}% to {target})",
            lambda snapshot: {"traffic": split_for(snapshot.state.serving(), target, first),
                              "tags": {target: TAG}})

    def prefetch(self, deps: Deps, subject: str) -> Prefetch | None:
        return common.start_snapshot_read(deps, subject)

    async def apply(self, deps: Deps, change: Change, prefetch: Prefetch | None) -> Applied:
        """The first step, if what serves is still what the plan showed."""
        first = deps.catalog.services[change.service].gradual.steps[0]
        return await self._move(deps, change, prefetch, split_for(
            common.before_traffic(change), self.rollout_target(change), first),
            tagged=True, check_drift=True)

    async def read_back(self, deps: Deps, change: Change) -> CheckResult:
        expected = common.after_traffic(change) or {self.rollout_target(change): 100}
        return await common.read_back_check(deps, change, lambda _state: expected)

    def measured_revision(self, change: Change) -> str | None:
        return self.rollout_target(change)

    def undo(self, change: Change) -> ChangeRequest | None:
        return TrafficKind().undo(change)

    # --- the steps (StagedKind) --------------------------------------------------------

    def rollout_target(self, change: Change) -> str:
        return _target_of(change.spec)

    def rollout_policy(self, deps: Deps, change: Change) -> RolloutPolicy:
        return RolloutPolicy.of(deps.catalog.services[change.service].gradual)

    async def set_step(self, deps: Deps, change: Change, percent: int) -> Applied:
        split = split_for(common.before_traffic(change), self.rollout_target(change), percent)
        return await self._move(deps, change, None, split, tagged=percent < 100)

    async def complete(self, deps: Deps, change: Change) -> Applied:
        return await self._move(deps, change, None, {self.rollout_target(change): 100},
                                tagged=False)

    async def restore(self, deps: Deps, change: Change) -> Applied:
        return await self._move(deps, change, None, common.before_traffic(change),
                                tagged=False)

    async def observe(self, deps: Deps, change: Change, start: dt.datetime,
                      end: dt.datetime) -> StepObservation:
        target = self.rollout_target(change)
        serving = common.after_traffic(change) or {}
        replaced = [rev for rev in serving if rev != target] or [
            rev for rev in common.before_traffic(change) if rev != target]
        metrics = measure_split(deps, change.service, "step", start=start, end=end,
                                target=target, replaced=replaced)
        (target_m, replaced_m, apart), checks = await asyncio.gather(
            metrics, _tag_checks(deps, change))
        service, region = common.spec_service(change)
        return StepObservation(target_m, replaced_m, checks, apart,
                               console_link(deps.catalog.gcp.project, region, service))

    async def _move(self, deps: Deps, change: Change, prefetch: Prefetch | None,
                    split: dict[str, int], *, tagged: bool,
                    check_drift: bool = False) -> Applied:
        began = time.monotonic()
        target = self.rollout_target(change)
        tags = {target: TAG} if tagged else {}
        service, region = common.spec_service(change)

        def as_asked(snapshot: ServiceSnapshot) -> bool:  # e.g. a retried job's step
            tags = _tags_of(snapshot.state)
            marked = tags.get(TAG) == target if tagged else TAG not in tags
            return snapshot.state.serving() == split and marked

        try:
            await common.update_once(
                deps, change, prefetch, applied=as_asked,
                drifted=lambda snapshot: (common.drift(change, snapshot, template=False)
                                          if check_drift else None),
                send=lambda snapshot: deps.cloud_run.update_service(
                    snapshot, traffic=split, tags=tags))
            state = await deps.cloud_run.get_service(service, region)
        except GoogleCallError as exc:
            raise await common.update_failed(deps, change, exc) from exc
        serving = state.serving()
        return Applied({"traffic": serving}, serving_check(
            split, serving, common.before_traffic(change),
            elapsed_ms=(time.monotonic() - began) * 1000))


def _target_of(spec: Mapping[str, Any]) -> str:
    traffic = {str(k): int(v) for k, v in (spec.get("traffic") or {}).items()}
    return max(traffic.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _tags_of(state: ServiceState) -> dict[str, str]:
    return {share.tag: share.revision for share in state.traffic if share.tag}


async def _tag_checks(deps: Deps, change: Change) -> tuple[CheckResult, ...]:
    """Health and ready on the target's own URL (its tag's), one GET each: the
    service's `health_url` / `ready_url` paths on that host."""
    svc = deps.catalog.services[change.service]
    wanted = [(name, url) for name, url in (("health", svc.health_url),
                                            ("ready", svc.ready_url)) if url]
    if not wanted:
        return ()
    service, region = common.spec_service(change)
    try:
        state = await deps.cloud_run.get_service(service, region)
    except GoogleCallError as exc:
        return tuple(CheckResult(name=f"{name} (target's URL)", url="", ok=False,
                                 status=None, detail=f"could not read its URL: {exc.message}",
                                 elapsed_ms=0.0) for name, _ in wanted)
    base = state.tag_uri(TAG)
    if not base:
        return tuple(CheckResult(name=f"{name} (target's URL)", url="", ok=False,
                                 status=None, detail="Cloud Run shows no URL for the tag "
                                 f"`{TAG}`", elapsed_ms=0.0) for name, _ in wanted)
    specs = [CheckSpec(f"{name} (target's URL)", _on(base, url), None) for name, url in wanted]
    timeout = svc.verification.timeout_seconds
    outcomes = await asyncio.gather(*(deps.http.check(spec.name, spec.url, timeout=timeout)
                                      for spec in specs))
    return tuple(http_result(spec, outcome) for spec, outcome in zip(specs, outcomes,
                                                                     strict=True))


def _on(base: str, url: str) -> str:
    parts = urlsplit(url)
    return base.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
