"""The application's switch stores named by the catalog, built for one use: its flags
(table or admin API) and its kill-switch Redis. Connection strings and keys are read
from the environment variables the catalog names, never from rollbot's own settings:
rollbot's database and Redis are never the application's.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping

from bot.catalog_flags import FlagGroup, KillSwitchGroup
from bot.deps import Deps
from bot.logs import register_secret_values
from integrations.app_flags import ApiFlags, DatabaseFlags, FlagStore, FlagStoreError
from integrations.google_retry import GoogleCallError
from integrations.kill_switches import KillSwitches, SwitchStoreError


def _env(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    if not value:
        raise LookupError(f"{name} is not set")
    return value


async def flag_store(deps: Deps, group: FlagGroup,
                     env: Mapping[str, str] = os.environ) -> FlagStore:
    """Raises FlagStoreError when its connection settings are missing or its key
    (a Secret Manager secret) cannot be read."""
    if group.backend == "api" and group.api_key_secret:
        if deps.secret_values is None:
            raise FlagStoreError("Secret Manager is not available here for the API key")
        try:
            secret = await deps.secret_values.read(group.api_key_secret)
        except GoogleCallError as exc:
            raise FlagStoreError(f"the flags API key could not be read: {exc.message}"
                                 ) from exc
        register_secret_values(secret)  # never in a log line
        base = group.base_url or env.get(group.base_url_env or "", "")
        if not base:
            raise FlagStoreError(f"the flag store is not configured here: "
                                 f"{group.base_url_env} is not set")
        return ApiFlags(base, secret, group.header)
    try:
        if group.backend == "database":
            assert group.database_url_env is not None
            return DatabaseFlags(_env(group.database_url_env, env), group.table,
                                 group.name_column, group.enabled_column,
                                 group.updated_at_column)
        base = group.base_url or _env(group.base_url_env or "", env)
        key = _env(group.api_key_env, env) if group.api_key_env else None
    except LookupError as exc:
        raise FlagStoreError(f"the flag store is not configured here: {exc}") from exc
    return ApiFlags(base, key, group.header)


def kill_switches(group: KillSwitchGroup, env: Mapping[str, str] = os.environ
                  ) -> KillSwitches:
    try:
        return KillSwitches(_env(group.redis_url_env, env))
    except LookupError as exc:
        raise SwitchStoreError(f"the kill-switch Redis is not configured here: {exc}"
                               ) from exc


def closest(name: str, known: Iterable[str]) -> str:
    """"Closest: a, b, c." for an unknown name (or every name, when few)."""
    known = sorted(set(known))
    near = difflib.get_close_matches(name, known, n=3, cutoff=0.5) or known[:5]
    return ("Closest: " + ", ".join(f"`{n}`" for n in near) + ".") if near else (
        "There are none.")
