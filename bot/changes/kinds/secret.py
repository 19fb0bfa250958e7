"""Secret: roll a Secret Manager secret back in the runbook's order ("Secret Rollback").

`/rollback secret API_SECRET_KEY 5` (bot/intents.py finds the services that read it and
proposes this kind, anchored on the first of them):

  1. enable version 5 if it is disabled;
  2. pin every catalog service that reads the secret to version 5 (a new revision per
     service, the template kinds' traffic rule);
  3. verify each service (the flow's checks, for every service the plan touches);
  4. only after a second confirmation in the thread, disable the version that was
     current (never destroy): the kind's `final_step`.

The same kind enables a version alone (a rotated-secret blocker's "Re-enable the old
version") and undoes itself (`undo`: the splits before, and a version step 1 enabled
disabled again). Its spec is a list of steps (bot/changes/kinds/secret_steps.py runs
them); a secret's value is never read: the client has no AccessSecretVersion.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bot.blockers import secret_blockers
from bot.catalog import Catalog
from bot.changes.kind import (
    Applied,
    ChangeRequest,
    FinalStep,
    PlannedChange,
    Prefetch,
    Usage,
)
from bot.changes.kinds import cloud_run_common as common
from bot.changes.kinds import secret_steps as steps
from bot.changes.model import Change
from bot.checks import CheckResult
from bot.deps import Deps
from bot.ids import KindName
from bot.parsing import CommandError
from bot.plans import CheckItem, Plan, PlanError, runbook_checklist
from bot.secret_usage import services_using, versions_in
from integrations.google_retry import GoogleCallError
from integrations.secret_manager import SecretVersion, resolve

SUBCOMMAND = "secret"
SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def subject_of(secret: str) -> str:
    return f"secret:{secret}"


def parse_secret(args: list[str]) -> tuple[str, str | None] | CommandError:
    """`/rollback secret NAME [VERSION]` words → (name, version or None)."""
    example = ("For example `/rollback secret API_SECRET_KEY` or "
               "`/rollback secret API_SECRET_KEY 5`.")
    if not args or len(args) > 2:
        return CommandError("`secret` takes a secret's name and, to roll back, a version.",
                            example)
    if not SECRET_NAME.match(args[0]):
        return CommandError(f"`{args[0][:60]}` is not a secret name.",
                            "Names are letters, digits, `_` and `-`. " + example)
    if len(args) == 2 and not args[1].isdigit():
        return CommandError(f"`{args[1][:30]}` is not a version number.",
                            "Versions are numbers (`latest` moves: name the version). "
                            + example)
    return args[0], (args[1] if len(args) == 2 else None)


class SecretKind:
    name = KindName.SECRET.value
    options: Mapping[str, bool] = MappingProxyType({})

    def usage(self) -> Sequence[Usage]:
        return (Usage("/rollback secret <NAME>", "its versions and which services read which"),
                Usage("/rollback secret <NAME> <version>",
                      "enable it, pin every service to it, verify, then disable the "
                      "current one on a second confirmation"))

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | CommandError | None:
        return None  # `/rollback secret …` is parsed by bot/intents.py (no service word)

    # --- plan -------------------------------------------------------------------------

    async def plan(self, deps: Deps, request: ChangeRequest) -> PlannedChange | PlanError:
        secret = str(request.args["secret"])
        if deps.secrets is None:
            return PlanError("Secret Manager is not available here.", "Nothing was changed.")
        try:
            versions = await deps.secrets.list_versions(secret)
            users = await services_using(deps, secret)
            planned = (self._undo_plan(deps, request, versions, users) if "undo" in request.args
                       else self._rollback_plan(deps, request, versions, users))
            if isinstance(planned, PlanError):
                return planned
            snapshot = dict(users).get(planned.plan.service)
            current = None if snapshot is None else await common.primary_facts(
                deps, snapshot, planned.plan.region)
        except GoogleCallError as exc:
            return steps.refused(exc, secret, deps.catalog.gcp.project)
        return dataclasses.replace(
            planned, plan=dataclasses.replace(planned.plan, current=current))

    def _rollback_plan(self, deps: Deps, request: ChangeRequest,
                             versions: list[SecretVersion],
                             users: list[tuple[str, Any]]) -> PlannedChange | PlanError:
        secret, version = str(request.args["secret"]), str(request.args["version"])
        found = next((v for v in versions if v.version == version), None)
        known = ", ".join(f"{v.version} ({v.state})" for v in versions[:10]) or "none"
        if found is None:
            return PlanError(f"Secret `{secret}` has no version {version}.",
                             f"Its versions: {known}. `/rollback secret {secret}` lists them.")
        enable_only = bool(request.args.get("enable_only"))
        if not users and not enable_only:
            return PlanError(f"No service in the catalog reads secret `{secret}`.",
                             "Nothing to pin. `/rollback secret "
                             f"{secret}` shows its versions and readers.")
        plan_steps: list[dict[str, Any]] = []
        if found.state == "disabled":
            plan_steps.append({"op": "enable", "version": version})
        current: set[str] = set()
        for name, snapshot in users if not enable_only else ():
            now = {resolve(v, versions) for v in versions_in(snapshot.template, secret)}
            current |= now
            if now != {version}:
                plan_steps.append(steps.pin_step(deps, name, snapshot, version))
        if not plan_steps:
            return PlanError(f"Nothing to do: every service already reads `{secret}` "
                             f"version {version}, and it is {found.state}.",
                             f"`/rollback secret {secret}` shows its versions and readers.")
        old = max(current - {version}, key=int, default=None) if current else None
        final = ({"op": "disable", "version": old}
                 if old and any(v.version == old and v.state == "enabled" for v in versions)
                 and not enable_only else None)
        return self._planned(deps, request, versions, users, plan_steps, final,
                             secret_blockers(secret, version, found.state))

    def _undo_plan(self, deps: Deps, request: ChangeRequest, versions: list[SecretVersion],
                   users: list[tuple[str, Any]]) -> PlannedChange | PlanError:
        return self._planned(deps, request, versions, users,
                             list(request.args["undo"]), None, [])

    def _planned(self, deps: Deps, request: ChangeRequest, versions: list[SecretVersion],
                 users: list[tuple[str, Any]], plan_steps: list[dict[str, Any]],
                 final: dict[str, Any] | None, blockers: list[CheckItem]) -> PlannedChange:
        secret = str(request.args["secret"])
        touched = [s["service"] for s in plan_steps if "service" in s] or [request.service]
        snapshots = dict(users)
        anchor = request.service if request.service in touched else touched[0]
        words = steps.words(secret, plan_steps, final, versions)
        svc = deps.catalog.services[anchor]
        snapshot = snapshots.get(anchor)
        checked = [CheckItem("Secret version identified", "ok", words.target), *blockers]
        warnings = tuple(warning for s in plan_steps if s["op"] == "pin"
                         if (warning := steps.template_warning(s["service"],
                                                               snapshots[s["service"]])))
        plan = Plan(
            service=anchor, cloud_run_service=svc.cloud_run_service,
            region=deps.catalog.region_of(anchor),
            current_traffic=snapshot.state.serving() if snapshot else {}, current=None,
            target=None, kind=self.name,
            checklist=runbook_checklist(deps.catalog, anchor, checked, words.target),
            dependent_services=tuple(svc.dependent_services),
            headline=words.headline, action=words.action, will_serve=words.will_serve,
            changes=words.lines, command=words.command, question=words.question,
            warnings=warnings,
            # Each pinned service's rules, slot and checks (none for an enable alone).
            services=tuple(dict.fromkeys(s["service"] for s in plan_steps if "service" in s)),
            escalate=tuple(svc.blockers.escalate_to))
        before = {"traffic": plan.current_traffic,
                  "states": {v.version: v.state for v in versions},
                  "services": {s: {**common.before_of(snapshots[s]),
                                   **steps.where(deps, s)}
                               for s in touched if s in snapshots}}
        spec = {"secret": secret, "steps": plan_steps, "final": final}
        return PlannedChange(plan, subject_of(secret), spec, before)

    async def dry_run(self, deps: Deps, planned: PlannedChange) -> str | None:
        return ("Secret Manager has no validate-only mode: the plan above was checked "
                "against the versions and services as they are now.")

    # --- apply ------------------------------------------------------------------------

    def prefetch(self, deps: Deps, subject: str) -> Prefetch | None:
        return None

    async def apply(self, deps: Deps, change: Change, prefetch: Prefetch | None) -> Applied:
        return await steps.run(deps, change)

    async def read_back(self, deps: Deps, change: Change) -> CheckResult:
        return await steps.read_back(deps, change)

    def measured_revision(self, change: Change) -> str | None:
        return (change.after or {}).get("revisions", {}).get(change.service)

    def undo(self, change: Change) -> ChangeRequest | None:
        undo = steps.inverse(change)
        if not undo:
            return None
        return ChangeRequest(self.name, change.service,
                             {"secret": change.spec["secret"], "undo": undo},
                             undo_of=change.id, subject=change.subject)

    # --- the step held for a second confirmation ---------------------------------------

    def final_step(self, change: Change) -> FinalStep | None:
        return steps.final_step(change)

    async def run_final_step(self, deps: Deps, change: Change, actor: str) -> dict[str, Any]:
        return await steps.run_final(deps, change, actor)
