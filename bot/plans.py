"""A rollback plan: what serves now, what will serve, what was checked.

Built from the catalog and Cloud Run before anything changes; stored with the
rollback (as JSON) so the card, the audit and a resumed job all see the same plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from bot.catalog import Catalog
from integrations.cloud_run import CloudRun, CloudRunError, Revision, ServiceState


def ordered_traffic(traffic: Mapping[str, int]) -> list[tuple[str, int]]:
    """Revision shares, largest first (ties by name)."""
    return sorted(traffic.items(), key=lambda kv: (-kv[1], kv[0]))


def traffic_plain(traffic: Mapping[str, int] | None) -> str:
    """`rev-a 90%, rev-b 10%`, largest share first: how plans, checks and messages
    say what serves in plain text."""
    if not traffic:
        return "nothing"
    return ", ".join(f"{rev} {pct}%" for rev, pct in ordered_traffic(traffic))


CheckStatus = Literal["ok", "fail", "todo"]


@dataclasses.dataclass(frozen=True)
class RevisionFacts:
    name: str
    image: str
    created: dt.datetime | None
    creator: str | None
    ready: bool

    @classmethod
    def of(cls, rev: Revision) -> RevisionFacts:
        return cls(rev.name, rev.image, rev.created, rev.creator, rev.ready)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "image": self.image, "creator": self.creator, "ready": self.ready,
            "created": self.created.isoformat() if self.created else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RevisionFacts:
        created = dt.datetime.fromisoformat(data["created"]) if data.get("created") else None
        return cls(data["name"], data["image"], created, data.get("creator"), data["ready"])


@dataclasses.dataclass(frozen=True)
class CheckItem:
    """One line of the pre-rollback checklist: checked by the bot, or a reminder."""

    text: str
    status: CheckStatus
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Plan:
    service: str  # catalog key
    cloud_run_service: str
    region: str
    current_traffic: dict[str, int]  # revision -> percent serving now
    current: RevisionFacts | None  # the revision with the largest share now
    target: RevisionFacts
    checklist: tuple[CheckItem, ...]
    dependent_services: tuple[str, ...] = ()

    @property
    def target_traffic(self) -> dict[str, int]:
        return {self.target.name: 100}

    @property
    def blockers(self) -> tuple[CheckItem, ...]:
        return tuple(item for item in self.checklist if item.status == "fail")

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    @property
    def gcloud_command(self) -> str:
        """The runbook's equivalent command, so it can be done by hand if the bot is down."""
        return (
            f"gcloud run services update-traffic {self.cloud_run_service} "
            f"--region={self.region} --to-revisions={self.target.name}=100"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "cloud_run_service": self.cloud_run_service,
            "region": self.region,
            "current_traffic": self.current_traffic,
            "current": self.current.to_json() if self.current else None,
            "target": self.target.to_json(),
            "checklist": [dataclasses.asdict(item) for item in self.checklist],
            "dependent_services": list(self.dependent_services),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            service=data["service"],
            cloud_run_service=data["cloud_run_service"],
            region=data["region"],
            current_traffic={k: int(v) for k, v in data["current_traffic"].items()},
            current=RevisionFacts.from_json(data["current"]) if data.get("current") else None,
            target=RevisionFacts.from_json(data["target"]),
            checklist=tuple(CheckItem(**item) for item in data["checklist"]),
            dependent_services=tuple(data.get("dependent_services", ())),
        )


@dataclasses.dataclass(frozen=True)
class PlanError:
    """Why no plan could be made (unknown revision, Cloud Run unreachable, …)."""

    problem: str
    hint: str


def _primary(state: ServiceState) -> str | None:
    serving = state.serving()
    return max(serving.items(), key=lambda kv: kv[1])[0] if serving else None


def checklist(catalog: Catalog, service: str, state: ServiceState,
              target: Revision) -> tuple[CheckItem, ...]:
    """The runbook's pre-rollback checklist with what the bot can check filled in."""
    svc = catalog.services[service]
    percent = state.percent_of(target.name)
    items = [
        CheckItem("Target revision identified", "ok", target.name),
        CheckItem("Target revision exists and is Ready", "ok" if target.ready else "fail",
                  "Ready" if target.ready else f"not Ready: {target.ready_message}"),
        CheckItem("Target is not already serving 100%", "fail" if percent >= 100 else "ok",
                  f"serving {percent}% now"),
    ]
    checked = ("identify target revision",)
    for text in catalog.runbook.pre_rollback_checklist:
        if any(word in text.lower() for word in checked):
            continue
        detail = ""
        if "dependent services" in text.lower() and svc.dependent_services:
            detail = ", ".join(svc.dependent_services)
        items.append(CheckItem(text, "todo", detail))
    return tuple(items)


async def build_plan(catalog: Catalog, cloud_run: CloudRun, service: str,
                     revision: str) -> Plan | PlanError:
    svc = catalog.services[service]
    region = catalog.region_of(service)
    try:
        state = await cloud_run.get_service(svc.cloud_run_service, region)
    except CloudRunError as exc:
        return _cloud_run_problem(exc, service, svc.cloud_run_service)
    try:
        target = await cloud_run.get_revision(svc.cloud_run_service, region, revision)
    except CloudRunError as exc:
        if exc.kind == "not_found":
            return PlanError(
                f"Revision `{revision}` does not exist in `{svc.cloud_run_service}` ({region}).",
                f"`/rollback {service}` lists the revisions you can roll back to.")
        return _cloud_run_problem(exc, service, svc.cloud_run_service)
    current = None
    primary = _primary(state)
    if primary:
        try:
            current = RevisionFacts.of(
                await cloud_run.get_revision(svc.cloud_run_service, region, primary))
        except CloudRunError as exc:
            return _cloud_run_problem(exc, service, svc.cloud_run_service)
    return Plan(
        service=service,
        cloud_run_service=svc.cloud_run_service,
        region=region,
        current_traffic=state.serving(),
        current=current,
        target=RevisionFacts.of(target),
        checklist=checklist(catalog, service, state, target),
        dependent_services=tuple(svc.dependent_services),
    )


def _cloud_run_problem(exc: CloudRunError, service: str, cloud_run_service: str) -> PlanError:
    reach = "Couldn't reach Cloud Run" if exc.transient else "Cloud Run refused"
    return PlanError(
        f"{reach} while planning the rollback of `{service}` ({cloud_run_service}): {exc.message}",
        "Nothing was changed. Try again in a minute.")
