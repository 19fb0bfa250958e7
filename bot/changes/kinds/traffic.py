"""Traffic: route a Cloud Run service's traffic to revisions that exist already.

The runbook's "Execute Rollback" (`/rollback api 00014-def`: 100% to one revision),
"Restore latest routing" (`/rollback api --to-latest`: LATEST 100%, so later deploys
get traffic again) and the Undo of every Cloud Run change (the exact split before).

spec:   {cloud_run_service, region, traffic: {revision: percent}} or {…, to_latest: true}
before: {traffic: {revision: percent}, latest: bool}   what served at planning time
after:  {traffic: {revision: percent}}                  read back after the change
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bot.blocker_reads import revision_blockers
from bot.blockers import check_revision
from bot.catalog import Catalog
from bot.changes.kind import Applied, ChangeRequest, PlannedChange, Prefetch, Usage
from bot.changes.kinds import cloud_run_common as common
from bot.changes.model import Change
from bot.changes.rollout import RolloutPolicy
from bot.checks import CheckResult
from bot.config_diff import diff_configs, short_summary
from bot.deps import Deps
from bot.ids import KindName
from bot.masking import Masker
from bot.parsing import CommandError, resolve_revision, shorten
from bot.plans import (
    CheckItem,
    Plan,
    PlanError,
    RevisionFacts,
    ServiceFacts,
    cloud_run_problem,
    primary_revision,
    read_service_facts,
    runbook_checklist,
    traffic_plain,
)
from bot.verification import serving_check
from integrations.cloud_run import RevisionConfig, ServiceState
from integrations.google_retry import GoogleCallError

TO_LATEST = "--to-latest"
GRADUAL = "--gradual"  # the same card, with a gradual rollout as its primary button


class TrafficKind:
    name = KindName.TRAFFIC.value
    options: Mapping[str, bool] = MappingProxyType({TO_LATEST: False,  # takes a value?
                                                    GRADUAL: False})

    def usage(self) -> Sequence[Usage]:
        return (
            Usage("/rollback <service> <revision>",
                  "propose a rollback (plan card, a teammate confirms)"),
            Usage("/rollback <service> <revision> --dry-run", "preview the plan, change nothing"),
            Usage(f"/rollback <service> <revision> {GRADUAL}",
                  "propose it in steps (50% then 100%, each watched), the card's Gradual"),
            Usage(f"/rollback <service> {TO_LATEST}",
                  "restore latest routing (LATEST 100%), e.g. after a rollback pinned it"),
        )

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | CommandError | None:
        if TO_LATEST in options and GRADUAL in options:
            return CommandError(f"`{GRADUAL}` moves traffic to one revision in steps; "
                                f"`{TO_LATEST}` cannot be gradual.",
                                f"For example `/rollback {service} 00014-def {GRADUAL}`.")
        if TO_LATEST in options:
            if args:
                return CommandError(
                    f"`{TO_LATEST}` takes no revision (got `{shorten(' '.join(args))}`).",
                    f"For example `/rollback {service} {TO_LATEST}`.")
            return ChangeRequest(self.name, service, {"to_latest": True})
        if not args:
            if GRADUAL in options:
                return CommandError(f"`{GRADUAL}` needs the revision to roll back to.",
                                    f"For example `/rollback {service} 00014-def {GRADUAL}`.")
            return None
        if len(args) > 1:
            return CommandError(
                f"Too many arguments after `{service}`: `{shorten(' '.join(args))}`.",
                f"Give one revision, e.g. `/rollback {service} 00014-def`.")
        revision = resolve_revision(catalog, service, args[0].lower())
        if isinstance(revision, CommandError):
            return revision
        gradual = {"gradual": True} if GRADUAL in options else {}
        return ChangeRequest(self.name, service, {"traffic": {revision: 100}, **gradual})

    async def plan(self, deps: Deps, request: ChangeRequest) -> PlannedChange | PlanError:
        facts = await read_service_facts(deps.catalog, deps.cloud_run, request.service)
        if isinstance(facts, PlanError):
            return facts
        if request.args.get("to_latest"):
            return await self._plan_latest(deps, request, facts)
        wanted = {str(k): int(v) for k, v in request.args["traffic"].items()}
        main = max(wanted.items(), key=lambda kv: (kv[1], kv[0]))[0]
        try:
            target = await deps.cloud_run.get_revision(facts.cloud_run_service, facts.region,
                                                       main)
            others = [await deps.cloud_run.get_revision(facts.cloud_run_service, facts.region,
                                                        rev) for rev in wanted if rev != main]
        except GoogleCallError as exc:
            if exc.kind == "not_found":
                return PlanError(
                    f"Revision `{_missing_revision(exc, wanted)}` does not exist in "
                    f"`{facts.cloud_run_service}` ({facts.region}).",
                    f"`/rollback {request.service}` lists the revisions you can roll back to.")
            return cloud_run_problem(exc, request.service, facts.cloud_run_service)
        single = len(wanted) == 1
        found = await revision_blockers(deps, request.service,
                                        [(r.name, r.created) for r in (target, *others)],
                                        facts.current.name if facts.current else None)
        also = _also_changes(deps, facts, main, found.configs)
        not_ready = [r.name for r in (target, *others) if not r.ready]
        if not not_ready:
            ready = "Ready"
        elif single:
            ready = f"not Ready: {target.ready_message}"
        else:
            ready = f"not Ready: {', '.join(not_ready)}"
        checked = [
            CheckItem("Target revision identified", "ok", main if single
                      else traffic_plain(wanted)),
            CheckItem("Target revision exists and is Ready", "todo" if not_ready else "ok",
                      ready),
        ]
        serving = facts.state.serving()
        if single:
            percent = facts.state.percent_of(main)
            checked.append(CheckItem("Target is not already serving 100%",
                                     "fail" if percent >= 100 else "ok",
                                     f"serving {percent}% now", overridable=False))
        else:
            checked.append(CheckItem("Target split differs from what serves now",
                                     "fail" if serving == wanted else "ok",
                                     f"serving now: {traffic_plain(serving)}",
                                     overridable=False))
        section = deps.catalog.services[request.service].blockers
        warnings: list[str] = [f"The target is {ready}: Cloud Run may not send it traffic."
                               ] if not_ready else []
        for revision in (target, *others):
            blocked, warned = check_revision(RevisionFacts.of(revision), section)
            checked.extend(blocked)
            warnings.extend(warned)
        checked.extend(found.blockers)
        warnings.extend(found.warnings)
        words = f"revision {main}" if single else traffic_plain(wanted)
        plan = self._plan(
            facts, RevisionFacts.of(target), runbook_checklist(deps.catalog, request.service,
                                                               checked, words),
            headline=f"{request.service} → {main if single else traffic_plain(wanted)}",
            action=f"rollback of {request.service} to {words}",
            will_serve="" if single else traffic_plain(wanted),
            changes=(f"also changes: {also}",) if also else (),
            command=(f"gcloud run services update-traffic {facts.cloud_run_service} "
                     f"--region={facts.region} --to-revisions="
                     + ",".join(f"{rev}={pct}" for rev, pct in wanted.items())),
            question=(f"Shift 100% of {request.service} ({facts.cloud_run_service}) "
                      f"traffic to {main}?" if single else
                      f"Shift {request.service} ({facts.cloud_run_service}) traffic to "
                      f"{traffic_plain(wanted)}?"),
            pins=True, warnings=tuple(warnings), escalate=tuple(section.escalate_to),
            remedy=found.remedy,
            **(_gradual_offer(deps, request) if single else {}))
        return PlannedChange(plan, request.service, self._spec(facts, traffic=wanted),
                             _before(facts))

    async def _plan_latest(self, deps: Deps, request: ChangeRequest,
                           facts: ServiceFacts) -> PlannedChange | PlanError:
        latest = facts.state.latest_ready_revision
        on_latest = common.on_latest(facts.state)
        try:
            target = await deps.cloud_run.get_revision(facts.cloud_run_service, facts.region,
                                                       latest)
        except GoogleCallError as exc:
            return cloud_run_problem(exc, request.service, facts.cloud_run_service)
        checked = [
            CheckItem("Target identified", "ok", f"LATEST (now {latest})"),
            CheckItem("Service is not on LATEST already", "fail" if on_latest else "ok",
                      "on LATEST 100% now" if on_latest
                      else f"pinned: {traffic_plain(facts.state.serving())}",
                      overridable=False),
        ]
        warnings: tuple[str, ...] = ()
        if facts.state.percent_of(latest) == 0 and latest != primary_revision(facts.state):
            rolled_back_from = latest
            warnings = (f"LATEST is `{rolled_back_from}`, which serves nothing now: if it is "
                        "the revision you rolled back from, this sends traffic back to it.",)
        plan = self._plan(
            facts, RevisionFacts.of(target),
            runbook_checklist(deps.catalog, request.service, checked, f"LATEST ({latest})"),
            headline=f"{request.service} → LATEST ({latest})",
            action=f"restore of latest routing for {request.service} (LATEST: {latest})",
            will_serve=f"LATEST (`{latest}`) 100%",
            command=(f"gcloud run services update-traffic {facts.cloud_run_service} "
                     f"--region={facts.region} --to-latest"),
            question=f"Send 100% of {request.service} traffic to LATEST ({latest})?",
            warnings=warnings)
        return PlannedChange(plan, request.service, self._spec(facts, to_latest=True),
                             _before(facts))

    def _plan(self, facts: ServiceFacts, target: RevisionFacts,
              checklist: tuple[CheckItem, ...], **words: Any) -> Plan:
        return Plan(
            service=facts.service, cloud_run_service=facts.cloud_run_service,
            region=facts.region, current_traffic=facts.state.serving(), current=facts.current,
            target=target, checklist=checklist,
            dependent_services=facts.dependent_services, kind=self.name, **words)

    @staticmethod
    def _spec(facts: ServiceFacts, **change: Any) -> dict[str, Any]:
        return {"cloud_run_service": facts.cloud_run_service, "region": facts.region, **change}

    async def dry_run(self, deps: Deps, planned: PlannedChange) -> str | None:
        return await common.validated(deps, planned.spec, "traffic change",
                                      lambda _snapshot: _routing(planned.spec))

    def prefetch(self, deps: Deps, subject: str) -> Prefetch | None:
        return common.start_snapshot_read(deps, subject)

    async def apply(self, deps: Deps, change: Change, prefetch: Prefetch | None) -> Applied:
        began = time.monotonic()
        service, region = common.spec_service(change)
        try:
            await common.update_once(
                deps, change, prefetch,
                applied=lambda snapshot: _as_asked(change, snapshot.state),
                drifted=lambda snapshot: common.drift(change, snapshot, template=False),
                send=lambda snapshot: deps.cloud_run.update_service(
                    snapshot, **_routing(change.spec)))
            state = await deps.cloud_run.get_service(service, region)
        except GoogleCallError as exc:
            raise await common.update_failed(deps, change, exc) from exc
        serving = state.serving()
        return Applied({"traffic": serving}, serving_check(
            _expected(change, state), serving, common.before_traffic(change),
            elapsed_ms=(time.monotonic() - began) * 1000))

    async def read_back(self, deps: Deps, change: Change) -> CheckResult:
        return await common.read_back_check(deps, change,
                                            lambda state: _expected(change, state))

    def measured_revision(self, change: Change) -> str | None:
        traffic = common.after_traffic(change) or _wanted(change)
        return max(traffic.items(), key=lambda kv: (kv[1], kv[0]))[0] if traffic else None

    def undo(self, change: Change) -> ChangeRequest | None:
        after = common.after_traffic(change)
        if after is None or after == common.before_traffic(change):
            return None  # nothing moved (or it could not be read back): nothing to undo
        if change.before.get("latest"):
            args: dict[str, Any] = {"to_latest": True}
        else:
            args = {"traffic": common.before_traffic(change)}
        return ChangeRequest(self.name, change.service, args, undo_of=change.id)


def _gradual_offer(deps: Deps, request: ChangeRequest) -> dict[str, Any]:
    """A rollback to one revision may go in steps instead (the card's Gradual)."""
    policy = RolloutPolicy.of(deps.catalog.services[request.service].gradual)
    asked = bool(request.args.get("gradual")) or request.kind == KindName.GRADUAL
    return {"alternatives": (KindName.GRADUAL.value,), "staged": policy.describe(),
            "preferred": KindName.GRADUAL.value if asked else ""}


def _also_changes(deps: Deps, facts: ServiceFacts, target: str,
                  configs: Mapping[str, RevisionConfig]) -> str:
    """Going back to a revision also brings back its config: the short diff for the
    card ("image v1.3.0→v1.2.2, env FEATURE_X, secret API_KEY@7→@5"), masked, from the
    configs the blockers' checks read. Left out when they could not be read."""
    if facts.current is None or facts.current.name == target:
        return ""
    serving, other = configs.get(facts.current.name), configs.get(target)
    if serving is None or other is None:
        return ""
    masker = Masker(deps.catalog.masking.secret_env_patterns)
    return short_summary(diff_configs(serving, other, masker))


def _wanted(change: Change) -> dict[str, int]:
    return {str(k): int(v) for k, v in (change.spec.get("traffic") or {}).items()}


def _expected(change: Change, state: ServiceState) -> dict[str, int]:
    if change.spec.get("to_latest"):
        return {state.latest_ready_revision: 100}
    return _wanted(change)


def _as_asked(change: Change, state: ServiceState) -> bool:
    if change.spec.get("to_latest"):
        return common.on_latest(state)
    return state.serving() == _wanted(change)


def _routing(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`update_service`'s traffic arguments for this spec."""
    if spec.get("to_latest"):
        return {"to_latest": True}
    return {"traffic": {str(k): int(v) for k, v in spec["traffic"].items()}}


def _before(facts: ServiceFacts) -> dict[str, Any]:
    return {"traffic": facts.state.serving(), "latest": common.on_latest(facts.state)}


def _missing_revision(exc: GoogleCallError, wanted: dict[str, int]) -> str:
    """Which of the wanted revisions Cloud Run did not find (its message names it)."""
    return next((rev for rev in wanted if rev in exc.message), next(iter(wanted)))
