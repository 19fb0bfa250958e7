"""What the two application-switch kinds share (a feature flag, a kill switch): a
one-line plan ("Flag `x` (app): on → off · checks: api"), the group's rules, drift
(the value at Confirm differs from the card's "before"), the change with its read-back
as the first check, and Undo (the value before, under the group's rules).

A subclass says which group rules it (`group`), how to read and write the value, and
its words. spec: {group, name, on}; before: {on}; after: {on}.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bot.catalog import Catalog
from bot.catalog_flags import FlagGroup, KillSwitchGroup
from bot.changes.kind import Applied, ChangeFailed, ChangeRequest, PlanDrift, PlannedChange
from bot.changes.model import Change
from bot.checks import CheckKind, CheckResult
from bot.deps import Deps
from bot.messages.base import ephemeral_error
from bot.plans import CheckItem, Plan, PlanError

Group = FlagGroup | KillSwitchGroup


def word(on: bool) -> str:
    return "on" if on else "off"


class SwitchKind:
    name: str
    noun: str  # "Flag", "Kill switch"
    store_error: type[Exception]

    def group(self, catalog: Catalog, group: str) -> Group | None:
        raise NotImplementedError

    async def read(self, deps: Deps, group: Group, name: str) -> bool | None:
        """The value now (None: no such flag or switch). Raises `store_error`."""
        raise NotImplementedError

    async def write(self, deps: Deps, group: Group, name: str, on: bool) -> bool:
        """Set it and read it back. Raises `store_error`."""
        raise NotImplementedError

    def manual(self, group_name: str, group: Group, name: str, on: bool) -> str:
        raise NotImplementedError

    # --- the protocol -------------------------------------------------------------------

    def rules(self, catalog: Catalog, args: Mapping[str, Any]) -> tuple[str, Group] | None:
        group = self.group(catalog, str(args["group"]))
        return None if group is None else (f"{self.noun.lower()} group {args['group']}",
                                            group)

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | None:
        return None  # its own slash command (bot/switch_intents.py)

    def immediate(self, args: Mapping[str, Any]) -> bool:
        return False

    async def plan(self, deps: Deps, request: ChangeRequest) -> PlannedChange | PlanError:
        group_name, name, on = (str(request.args["group"]), str(request.args["name"]),
                                bool(request.args["on"]))
        group = self.group(deps.catalog, group_name)
        if group is None:
            return PlanError(f"{self.noun} group `{group_name}` is not in the catalog.",
                             "Nothing was changed.")
        try:
            now = await self.read(deps, group, name)
        except self.store_error as exc:
            return PlanError(f"Couldn't read {self.noun.lower()} `{name}`: {exc}",
                             "Nothing was changed. Try again in a minute.")
        if now is None:
            return PlanError(f"{self.noun} `{name}` is not in group `{group_name}`.",
                             "Nothing was changed.")
        if now == on:
            return PlanError(f"{self.noun} `{name}` is already {word(on)}.",
                             "Nothing to do; nothing was changed.")
        checks = ", ".join(group.services) or "none (the read-back alone)"
        line = (f"{self.noun} `{name}` ({group_name}): {word(now)} → {word(on)} · "
                f"checks: {checks}")
        immediate = self.immediate(request.args) and request.undo_of is None
        plan = Plan(
            service=request.service, cloud_run_service="", region="", current_traffic={},
            current=None, target=None, kind=self.name,
            checklist=(CheckItem(f"{self.noun} identified", "ok",
                                 f"{name} in group {group_name}, {word(now)} now"),),
            headline=f"{self.noun.lower()} {name} ({group_name}): {word(now)} → {word(on)}",
            action=f"turning {self.noun.lower()} `{name}` {word(on)}",
            will_serve=f"{self.noun.lower()} `{name}` {word(on)}", changes=(line,),
            command=self.manual(group_name, group, name, on),
            question=f"Turn {self.noun.lower()} {name} {word(on)}?",
            verifies=tuple(group.services), immediate=immediate)
        return PlannedChange(plan, f"{self.name}:{group_name}/{name}",
                             {"group": group_name, "name": name, "on": on}, {"on": now})

    async def dry_run(self, deps: Deps, planned: PlannedChange) -> str | None:
        return (f"The {self.noun.lower()} store has no validate-only mode: it was read, "
                "and nothing was changed.")

    def prefetch(self, deps: Deps, subject: str) -> None:
        return None

    async def apply(self, deps: Deps, change: Change, prefetch: object) -> Applied:
        began = time.monotonic()
        spec = change.spec
        name, on, before = str(spec["name"]), bool(spec["on"]), bool(change.before["on"])
        group = self.group(deps.catalog, str(spec["group"]))
        if group is None:
            raise PlanDrift(f"{self.noun.lower()} group {spec['group']} left the catalog")
        try:
            now = await self.read(deps, group, name)
            if now is None:
                raise PlanDrift(f"{self.noun.lower()} {name} no longer exists")
            ours = (change.after or {}).get("writing") == on  # resumed after a restart
            if now != before and not (ours and now == on):
                raise PlanDrift(f"{self.noun.lower()} {name} is {word(now)} now; the "
                                f"card showed {word(before)}")
            if now != on:
                # Marked first: a restart then knows a value already `on` is this change's.
                await deps.changes.set_fields(change.id, after={"writing": on})
                now = await self.write(deps, group, name, on)
        except self.store_error as exc:
            raise ChangeFailed(f"{self.noun} change failed: {exc}", report=ephemeral_error(
                f"{self.noun} `{name}` could not be changed: {exc}",
                "Nothing was changed."), unchanged=True) from exc
        return Applied({"on": now}, self._check(name, on, now, began))

    def _check(self, name: str, on: bool, now: bool | None, began: float) -> CheckResult:
        ok = now == on
        detail = (f"{self.noun.lower()} {name} is {word(on)}, as asked" if ok else
                  f"{self.noun.lower()} {name} reads {word(bool(now))}, "
                  f"but {word(on)} was asked for")
        return CheckResult(name="read-back", url="", ok=ok, status=None, detail=detail,
                           elapsed_ms=(time.monotonic() - began) * 1000,
                           kind=CheckKind.READ_BACK)

    async def read_back(self, deps: Deps, change: Change) -> CheckResult:
        began = time.monotonic()
        name, on = str(change.spec["name"]), bool(change.spec["on"])
        group = self.group(deps.catalog, str(change.spec["group"]))
        try:
            now = await self.read(deps, group, name) if group is not None else None
        except self.store_error:
            now = None
        return self._check(name, on, now, began)

    def measured_revision(self, change: Change) -> str | None:
        return None

    def undo(self, change: Change) -> ChangeRequest | None:
        after = change.after or {}
        if after.get("on") is None or after["on"] == change.before["on"]:
            return None
        return ChangeRequest(self.name, change.service,
                             {**change.spec, "on": change.before["on"]},
                             undo_of=change.id, subject=change.subject)
