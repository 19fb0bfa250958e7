"""What the rollback blockers need read before a plan is shown: the target revisions'
secret references and each secret's version states (Secret Manager), the schema each
revision knows (a label) and the one in use (the serving revision's label, or the
application's migrations table). The judgements are bot/blockers.py's (pure).

A read that fails never passes silently: it becomes a warning on the card saying
which check could not run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
from typing import Any

import psycopg

from bot import blockers
from bot.catalog import BlockersSection
from bot.deps import Deps
from bot.ids import KindName
from bot.plans import CheckItem
from integrations.cloud_run import RevisionConfig
from integrations.google_retry import GoogleCallError
from integrations.secret_manager import newest

SCHEMA_QUERY_TIMEOUT_SECONDS = 5


@dataclasses.dataclass
class Found:
    blockers: list[CheckItem] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    remedy: dict[str, Any] | None = None  # a change that lifts a blocker (Plan.remedy)
    # The configs read on the way (targets and the serving revision), by revision name:
    # the plan's config diff reads them from here instead of reading them again.
    configs: dict[str, RevisionConfig] = dataclasses.field(default_factory=dict)


async def _secret_states(deps: Deps, secrets: set[str], found: Found
                         ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    states: dict[str, dict[str, str]] = {}
    latest: dict[str, str] = {}
    if deps.secrets is None or not secrets:
        return states, latest
    names = sorted(secrets)
    read = await asyncio.gather(*(deps.secrets.list_versions(s) for s in names),
                                return_exceptions=True)
    for secret, versions in zip(names, read, strict=True):
        if isinstance(versions, BaseException):
            why = versions.message if isinstance(versions, GoogleCallError) else str(versions)
            found.warnings.append(f"Could not read secret {secret}'s versions ({why}): "
                                  "check by hand that the versions the target reads are "
                                  "enabled.")
            continue
        states[secret] = {v.version: v.state for v in versions}
        top = newest(versions)
        if top is not None:
            latest[secret] = top.version
    return states, latest


async def _migrations(section: BlockersSection) -> Any:
    """The one value the application's migrations query returns."""
    assert section.schema_query is not None and section.schema_database_url_env
    url = os.environ.get(section.schema_database_url_env)
    if not url:
        raise LookupError(f"{section.schema_database_url_env} is not set")
    async with await psycopg.AsyncConnection.connect(
            url, connect_timeout=SCHEMA_QUERY_TIMEOUT_SECONDS, autocommit=True) as conn:
        await conn.execute(f"SET statement_timeout = {SCHEMA_QUERY_TIMEOUT_SECONDS * 1000}")
        row = await (await conn.execute(section.schema_query)).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def _schema_of(config: RevisionConfig, label: str | None) -> str | None:
    """The schema a revision knows: its label, else its annotation, of that name."""
    if not label:
        return None
    return config.labels.get(label) or config.annotations.get(label)


async def _schema_in_use(section: BlockersSection, found: Found) -> Any:
    """The migrations table's one value (read once per plan); None, with a warning,
    when the query cannot run: never a pass."""
    try:
        value = await _migrations(section)
    except Exception as exc:  # the app's database: any failure is said, never a pass
        found.warnings.append(f"The schema check could not run ({type(exc).__name__}: "
                              f"{str(exc)[:200]}): check for migrations by hand.")
        return None
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _schema(section: BlockersSection, target: RevisionConfig, created: dt.datetime | None,
            serving: RevisionConfig | None, in_use: Any, found: Found) -> None:
    label = section.schema_label
    knows = _schema_of(target, label)
    if section.schema_query is None:
        if label and serving is not None and serving.revision != target.revision:
            items, warned = blockers.check_schema(
                target.revision, knows, _schema_of(serving, label),
                f"the serving revision ({serving.revision})")
            found.blockers += items
            found.warnings += warned
    elif isinstance(in_use, dt.datetime):
        found.blockers += blockers.check_migrated_since(target.revision, created, in_use)
    elif in_use is not None:
        items, warned = blockers.check_schema(target.revision, knows, str(in_use),
                                              "the database's migrations table")
        found.blockers += items
        found.warnings += warned


async def revision_blockers(deps: Deps, service: str, targets: list[tuple[str, Any]],
                            serving: str | None) -> Found:
    """Secret and schema blockers for serving `targets` ((revision, created) pairs)
    again, `serving` being the revision that serves most now."""
    section = deps.catalog.services[service].blockers
    svc, region = deps.catalog.services[service], deps.catalog.region_of(service)
    found = Found()
    names = [name for name, _ in targets] + ([serving] if serving else [])
    try:
        configs = await asyncio.gather(*(deps.cloud_run.get_revision_config(
            svc.cloud_run_service, region, name) for name in names))
    except GoogleCallError as exc:
        found.warnings.append(f"Could not read the target's configuration ({exc.message}): "
                              "its secrets and schema were not checked.")
        return found
    found.configs = dict(zip(names, configs, strict=True))
    serving_config = configs[len(targets)] if serving else None
    refs: dict[str, set[str]] = {}
    for config in configs[:len(targets)]:
        for secret, versions in config.secret_refs().items():
            refs.setdefault(secret, set()).update(versions)
    states, latest = await _secret_states(deps, set(refs), found)
    items, remedy = blockers.check_secrets(refs, states, latest)
    found.blockers += items
    if remedy is not None:
        secret, version = remedy
        found.remedy = {"label": "Re-enable the old version", "kind": KindName.SECRET.value,
                        "service": service, "subject": f"secret:{secret}",
                        "args": {"secret": secret, "version": version, "enable_only": True},
                        "says": f"enable {secret} version {version}"}
    in_use = await _schema_in_use(section, found) if section.schema_query else None
    for config, (_, created) in zip(configs, targets, strict=False):
        _schema(section, config, created, serving_config, in_use, found)
    return found
