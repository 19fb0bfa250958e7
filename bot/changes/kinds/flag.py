"""Flag: turn one of the application's feature flags on or off (the runbook's "Feature
Flag Rollback": the fastest rollback there is). `/flag off new-scoring-model`, under its
group's rules; its table or admin API is the catalog's `[flags.<group>]`."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bot.catalog import Catalog
from bot.catalog_flags import FlagGroup, KillSwitchGroup
from bot.changes.kind import Usage
from bot.changes.kinds.switch_common import SwitchKind
from bot.deps import Deps
from bot.ids import KindName
from bot.switch_stores import flag_store
from integrations.app_flags import FlagStoreError


class FlagKind(SwitchKind):
    name = KindName.FLAG.value
    noun = "Flag"
    store_error = FlagStoreError
    options: Mapping[str, bool] = MappingProxyType({})

    def usage(self) -> tuple[Usage, ...]:
        return (Usage("/flag list [filter]", "the application's feature flags and their state"),
                Usage("/flag off <name> · /flag on <name>",
                      "turn a flag off or on (a teammate confirms; its services' checks "
                      "follow)"),
                Usage("/flag history <name>", "that flag's changes"))

    def group(self, catalog: Catalog, group: str) -> FlagGroup | None:
        return catalog.flags.get(group)

    async def read(self, deps: Deps, group: FlagGroup | KillSwitchGroup,
                   name: str) -> bool | None:
        assert isinstance(group, FlagGroup)
        flag = await (await flag_store(deps, group)).get(name)
        return None if flag is None else flag.enabled

    async def write(self, deps: Deps, group: FlagGroup | KillSwitchGroup, name: str,
                    on: bool) -> bool:
        assert isinstance(group, FlagGroup)
        _, after = await (await flag_store(deps, group)).set(name, on)
        return after.enabled

    def manual(self, group_name: str, group: FlagGroup | KillSwitchGroup, name: str,
               on: bool) -> str:
        assert isinstance(group, FlagGroup)
        if group.backend == "database":
            return (f"psql \"${group.database_url_env}\" -c \"UPDATE {group.table} SET "
                    f"{group.enabled_column} = {str(on).lower()} WHERE {group.name_column} "
                    f"= '{name}'\"")
        base = group.base_url or f"${group.base_url_env}"
        key = f"${group.api_key_env}" if group.api_key_env else "<key>"
        return (f"curl -X PATCH -H '{group.header}: {key}' -H 'Content-Type: application/json' "
                f"-d '{{\"enabled\": {str(on).lower()}}}' {base}/admin/feature-flags/{name}")
