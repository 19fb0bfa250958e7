"""Kill switch: the application's emergency brake (the runbook's "Emergency Kill
Switch"), `kill_switch:<name>` in its Redis. On is pulled by one person, at once (no
second confirmation), announced and audited; off, and every undo, follow the group's
rules."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bot.catalog import Catalog
from bot.catalog_flags import FlagGroup, KillSwitchGroup
from bot.changes.kind import Usage
from bot.changes.kinds.switch_common import SwitchKind
from bot.deps import Deps
from bot.ids import KindName
from bot.switch_stores import kill_switches
from integrations.kill_switches import SwitchStoreError


class KillSwitchKind(SwitchKind):
    name = KindName.KILL_SWITCH.value
    noun = "Kill switch"
    store_error = SwitchStoreError
    options: Mapping[str, bool] = MappingProxyType({})

    def usage(self) -> tuple[Usage, ...]:
        return (Usage("/killswitch list", "every kill switch, on or off"),
                Usage("/killswitch <name> on", "pull it now: one person, announced"),
                Usage("/killswitch <name> off", "release it (a teammate confirms)"),
                Usage("/killswitch <name> status", "on or off, and its raw value"))

    def group(self, catalog: Catalog, group: str) -> KillSwitchGroup | None:
        return catalog.killswitches.get(group)

    def immediate(self, args: Mapping[str, Any]) -> bool:
        return bool(args.get("on"))

    async def read(self, deps: Deps, group: FlagGroup | KillSwitchGroup,
                   name: str) -> bool | None:
        assert isinstance(group, KillSwitchGroup)
        if name not in group.switches:
            return None
        switches = kill_switches(group)
        try:
            return (await switches.get(name)).on
        finally:
            await switches.close()

    async def write(self, deps: Deps, group: FlagGroup | KillSwitchGroup, name: str,
                    on: bool) -> bool:
        assert isinstance(group, KillSwitchGroup)
        switches = kill_switches(group)
        try:
            return (await switches.set(name, on)).on
        finally:
            await switches.close()

    def manual(self, group_name: str, group: FlagGroup | KillSwitchGroup, name: str,
               on: bool) -> str:
        assert isinstance(group, KillSwitchGroup)
        action = f'SET kill_switch:{name} "true"' if on else f"DEL kill_switch:{name}"
        return f'redis-cli -u "${group.redis_url_env}" {action}'
