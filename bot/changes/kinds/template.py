"""What every kind that changes a Cloud Run service's template shares (image, env,
secret pins): a new revision named by rollbot, the traffic rule, drift, undo.

- **The new revision** is `<service>-rb-<change id>`, and the same UpdateService
  sends it 100% by name, so the service stays pinned as after a traffic rollback;
  if the service was on LATEST, LATEST 100% instead.
- **Nothing else changes**: the request is the template as read, with only the
  kind's edit, `template.revision` and the `rollbot-change` label.
- **Drift**: the serving split, or the template's image / env / secret references,
  differ from what the plan showed. An etag-only change (a label edit) is not drift.
- **Undo** restores the exact split before, by revision name (the old revisions
  still exist): no secret value is ever stored to undo a change.

A subclass says what it wants (`wanted`), how that edits the template (`edit`), how
the card names it (`words`) and how to tell it took (`achieved`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bot.changes.kind import Applied, ChangeRequest, PlannedChange, Prefetch
from bot.changes.kinds import cloud_run_common as common
from bot.changes.model import Change
from bot.checks import CheckResult
from bot.deps import Deps
from bot.ids import KindName
from bot.plans import Plan, PlanError, cloud_run_problem, runbook_checklist
from bot.verification import serving_check
from integrations.cloud_run import ServiceSnapshot, TemplateEdit
from integrations.google_retry import GoogleCallError

CHANGE_LABEL = "rollbot-change"


def revision_name(change: Change) -> str:
    return f"{change.spec['cloud_run_service']}-rb-{change.id}"


class TemplateKind:
    """The protocol's Cloud Run half for template changes; subclasses fill in the rest."""

    name: str

    async def wanted(self, deps: Deps, request: ChangeRequest,
                     snapshot: ServiceSnapshot) -> dict[str, Any] | PlanError:
        """What the change sets (stored in spec), resolved against the service."""
        raise NotImplementedError

    async def resolve(self, deps: Deps, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        """The spec with anything read only when applying (e.g. another revision's
        value, never stored) filled in."""
        return spec

    def edit(self, spec: Mapping[str, Any]) -> TemplateEdit:
        raise NotImplementedError

    def words(self, deps: Deps, service: str, spec: Mapping[str, Any],
              snapshot: ServiceSnapshot) -> common.TemplateWords:
        raise NotImplementedError

    def achieved(self, spec: Mapping[str, Any], config: common.RevisionConfig) -> str | None:
        """Why the new revision does not run what was asked; None when it does."""
        raise NotImplementedError

    # --- plan -------------------------------------------------------------------------

    async def plan(self, deps: Deps, request: ChangeRequest) -> PlannedChange | PlanError:
        catalog = deps.catalog
        svc = catalog.services[request.service]
        region = catalog.region_of(request.service)
        try:
            snapshot = await deps.cloud_run.read_service(svc.cloud_run_service, region)
            current = await common.primary_facts(deps, snapshot, region)
        except GoogleCallError as exc:
            return cloud_run_problem(exc, request.service, svc.cloud_run_service)
        wanted = await self.wanted(deps, request, snapshot)
        if isinstance(wanted, PlanError):
            return wanted
        spec = {"cloud_run_service": svc.cloud_run_service, "region": region, **wanted}
        words = self.words(deps, request.service, spec, snapshot)
        on_latest = common.on_latest(snapshot.state)
        new = f"`{svc.cloud_run_service}-rb-<change #>`"
        plan = Plan(
            service=request.service, cloud_run_service=svc.cloud_run_service, region=region,
            current_traffic=snapshot.state.serving(), current=current, target=None,
            checklist=runbook_checklist(catalog, request.service, list(words.checked),
                                        words.headline.split(" → ", 1)[-1]),
            dependent_services=tuple(svc.dependent_services), kind=self.name,
            headline=words.headline, action=words.action,
            will_serve=(f"LATEST: a new revision {new}, 100%" if on_latest
                        else f"a new revision {new}, 100%"),
            changes=words.changes,
            command=(f"gcloud run services update {svc.cloud_run_service} "
                     f"--region={region} {words.command_flags}"),
            question=words.question, pins=not on_latest)
        return PlannedChange(plan, request.service, spec, common.before_of(snapshot))

    async def dry_run(self, deps: Deps, planned: PlannedChange) -> str | None:
        try:
            spec = await self.resolve(deps, planned.spec)
        except GoogleCallError as exc:
            return f"Cloud Run refused it: {exc.message}"
        name = f"{spec['cloud_run_service']}-rb-dry-run"
        return await common.validated(deps, spec, "update", lambda snapshot: {
            "edit": self.edit(spec), "labels": {CHANGE_LABEL: "dry-run"},
            "revision_name": name, **common.traffic_rule(snapshot, name)})

    # --- apply ------------------------------------------------------------------------

    def prefetch(self, deps: Deps, subject: str) -> Prefetch | None:
        return common.start_snapshot_read(deps, subject)

    async def apply(self, deps: Deps, change: Change, prefetch: Prefetch | None) -> Applied:
        began = time.monotonic()
        name = revision_name(change)
        try:
            spec = await self.resolve(deps, change.spec)
            await common.update_once(
                deps, change, prefetch,
                # Named after the change: if the template has its name, it went through.
                applied=lambda snapshot: snapshot.template.revision == name,
                drifted=lambda snapshot: common.drift(change, snapshot, template=True),
                send=lambda snapshot: deps.cloud_run.update_service(
                    snapshot, edit=self.edit(spec), revision_name=name,
                    labels={CHANGE_LABEL: str(change.id)},
                    **common.traffic_rule(snapshot, name)))
            service, region = common.spec_service(change)
            state = await deps.cloud_run.get_service(service, region)
            config = await deps.cloud_run.get_revision_config(service, region, name)
        except GoogleCallError as exc:
            raise await common.update_failed(deps, change, exc, "Cloud Run update") from exc
        serving = state.serving()
        check = serving_check({name: 100}, serving, common.before_traffic(change),
                              elapsed_ms=(time.monotonic() - began) * 1000)
        missed = self.achieved(spec, config)
        if missed and check.ok:
            check = common.failed_check(check, missed)
        return Applied({"traffic": serving, "revision": name, "image": config.image}, check)

    async def read_back(self, deps: Deps, change: Change) -> CheckResult:
        name = (change.after or {}).get("revision") or revision_name(change)
        return await common.read_back_check(deps, change, lambda _state: {name: 100})

    def measured_revision(self, change: Change) -> str | None:
        return (change.after or {}).get("revision") or revision_name(change)

    def undo(self, change: Change) -> ChangeRequest | None:
        after = common.after_traffic(change)
        if after is None or after == common.before_traffic(change):
            return None
        # The exact split before, by name: undoing never re-creates a revision.
        return ChangeRequest(KindName.TRAFFIC.value, change.service,
                             {"traffic": common.before_traffic(change)}, undo_of=change.id)
