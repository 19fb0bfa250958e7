"""Which catalog services, and which of their revisions, refer to which version of a
secret (env `secret_key_ref.version`, secret volumes' `items[].version`); `latest`
resolved as Secret Manager does (the newest version). Read-only."""

from __future__ import annotations

import asyncio
import dataclasses

from bot.deps import Deps
from integrations.cloud_run import RevisionConfig, ServiceSnapshot
from integrations.secret_manager import SecretVersion, resolve

SHOWN_REVISIONS = 10


@dataclasses.dataclass(frozen=True)
class SecretUse:
    service: str  # catalog key
    revision: str  # a revision's name, or "" for the service's template (what deploys next)
    version: str  # as referenced: "2" or "latest"
    resolved: str  # the version number it reads now
    serving: int = 0  # the revision's share of traffic


def versions_in(config: RevisionConfig, secret: str) -> set[str]:
    return config.secret_refs().get(secret, set())


def uses_in(service: str, config: RevisionConfig, secret: str, versions: list[SecretVersion],
            *, revision: str = "", serving: int = 0) -> list[SecretUse]:
    return [SecretUse(service, revision, v, resolve(v, versions), serving)
            for v in sorted(versions_in(config, secret))]


async def _service_uses(deps: Deps, service: str, secret: str,
                        versions: list[SecretVersion]) -> list[SecretUse]:
    svc, region = deps.catalog.services[service], deps.catalog.region_of(service)
    snapshot, revisions = await asyncio.gather(
        deps.cloud_run.read_service(svc.cloud_run_service, region),
        deps.cloud_run.list_revisions(svc.cloud_run_service, region, limit=SHOWN_REVISIONS))
    configs = await asyncio.gather(*(
        deps.cloud_run.get_revision_config(svc.cloud_run_service, region, rev.name)
        for rev in revisions))
    serving = snapshot.state.serving()
    found = uses_in(service, snapshot.template, secret, versions)
    for config in configs:
        found += uses_in(service, config, secret, versions, revision=config.revision,
                         serving=serving.get(config.revision, 0))
    return found


async def secret_uses(deps: Deps, secret: str,
                      versions: list[SecretVersion]) -> list[SecretUse]:
    """Every catalog service's template and last revisions that read `secret`.
    Raises GoogleCallError when Cloud Run cannot be read."""
    per_service = await asyncio.gather(*(_service_uses(deps, name, secret, versions)
                                         for name in deps.catalog.services))
    return [use for uses in per_service for use in uses]


async def services_using(deps: Deps, secret: str) -> list[tuple[str, ServiceSnapshot]]:
    """The catalog services whose template (what serves next) reads `secret`, in catalog
    order, with the read each was found in."""
    names = list(deps.catalog.services)
    snapshots = await asyncio.gather(*(
        deps.cloud_run.read_service(deps.catalog.services[n].cloud_run_service,
                                    deps.catalog.region_of(n)) for n in names))
    return [(name, snap) for name, snap in zip(names, snapshots, strict=True)
            if versions_in(snap.template, secret)]
