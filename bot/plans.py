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
from integrations.cloud_run import CloudRun, Revision, ServiceState
from integrations.google_retry import GoogleCallError


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
    # A runbook blocker an approver may override (with a reason); False: a plan with
    # nothing to do (the target serves already), never proposed.
    overridable: bool = True


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a change will do, in the words its card, announcement and thread use.

    Built by the change's kind (bot/changes/kinds/) before anything changes. Every kind
    so far changes a Cloud Run service, so the facts are a service's: what serves now
    (`current_traffic`, `current`), what will serve (`target_traffic` or `will_serve`).
    """

    service: str  # catalog key
    cloud_run_service: str
    region: str
    current_traffic: dict[str, int]  # revision -> percent serving now
    current: RevisionFacts | None  # the revision with the largest share now
    target: RevisionFacts | None  # the revision that will serve, if it exists already
    checklist: tuple[CheckItem, ...]
    dependent_services: tuple[str, ...] = ()
    kind: str = "traffic"
    headline: str = ""  # "api → medicalcor-api-00014-def": the card's and thread's subject
    action: str = ""  # "rollback of api to revision …": what the announcement initiates
    will_serve: str = ""  # mrkdwn, when the target is not a plain split of revisions
    changes: tuple[str, ...] = ()  # what else comes with it (config diff, masked)
    warnings: tuple[str, ...] = ()
    command: str = ""  # the runbook's equivalent, to do it by hand if rollbot is down
    question: str = ""  # the Confirm dialog's question
    pins: bool = False  # leaves the service pinned (later deploys get no traffic)
    # Other kinds the same change may be confirmed as (a traffic rollback as a gradual
    # one: the card's Gradual button), with their words; `preferred`: the card's
    # primary button ("" = Confirm, the plan's own kind).
    alternatives: tuple[str, ...] = ()
    staged: str = ""  # a gradual rollout's steps, when one is offered
    preferred: str = ""
    escalate: tuple[str, ...] = ()  # whom a blocked plan says to escalate to (Slack ids)
    # Every catalog service the change touches, when more than `service` (a secret
    # pinned in each service that reads it): each one's approvers and checks apply.
    services: tuple[str, ...] = ()
    # What a blocker says to do first, as a change the card's button proposes:
    # {"label", "kind", "service", "args"} (e.g. re-enable a rotated secret's version).
    remedy: dict[str, Any] | None = None
    # An approver's override of the blockers: {"by", "reason", "blockers"}.
    override: dict[str, Any] | None = None
    # Confirmed by its requester at once, no card to click (a kill switch pulled on).
    immediate: bool = False
    # Services whose checks follow the change though it does not change them (a flag
    # group's): they hold no slot and set no rules.
    verifies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Plans stored before change kinds existed are traffic rollbacks: their
        # words follow from the target, as they always did.
        target = self.target.name if self.target else "?"
        defaults = {
            "headline": f"{self.service} → {target}",
            "action": f"rollback of {self.service} to revision {target}",
            "command": (f"gcloud run services update-traffic {self.cloud_run_service} "
                        f"--region={self.region} --to-revisions={target}=100"),
            "question": (f"Shift 100% of {self.service} ({self.cloud_run_service}) traffic "
                         f"to {target}?"),
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)

    @property
    def target_traffic(self) -> dict[str, int]:
        return {self.target.name: 100} if self.target else {}

    @property
    def blockers(self) -> tuple[CheckItem, ...]:
        return tuple(item for item in self.checklist if item.status == "fail")

    @property
    def pointless(self) -> bool:
        """A failed check nobody may override: shown to the requester only."""
        return any(not item.overridable for item in self.blockers)

    @property
    def blocked(self) -> bool:
        """Blocked unless an approver overrode its blockers (with a reason, audited)."""
        return bool(self.blockers) and self.override is None

    @property
    def touched(self) -> tuple[str, ...]:
        """The catalog services whose rules and checks apply to the change."""
        return self.services or (self.service,)

    @property
    def checked(self) -> tuple[str, ...]:
        """The catalog services whose checks verify the change."""
        return self.services or self.verifies or (self.service,)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "service": self.service,
            "cloud_run_service": self.cloud_run_service,
            "region": self.region,
            "current_traffic": self.current_traffic,
            "current": self.current.to_json() if self.current else None,
            "target": self.target.to_json() if self.target else None,
            "checklist": [dataclasses.asdict(item) for item in self.checklist],
            "dependent_services": list(self.dependent_services),
            "headline": self.headline,
            "action": self.action,
            "will_serve": self.will_serve,
            "changes": list(self.changes),
            "warnings": list(self.warnings),
            "command": self.command,
            "question": self.question,
            "pins": self.pins,
            "alternatives": list(self.alternatives),
            "staged": self.staged,
            "preferred": self.preferred,
            "escalate": list(self.escalate),
            "services": list(self.services),
            "remedy": self.remedy,
            "override": self.override,
            "immediate": self.immediate,
            "verifies": list(self.verifies),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            service=data["service"],
            cloud_run_service=data["cloud_run_service"],
            region=data["region"],
            current_traffic={k: int(v) for k, v in data["current_traffic"].items()},
            current=RevisionFacts.from_json(data["current"]) if data.get("current") else None,
            target=RevisionFacts.from_json(data["target"]) if data.get("target") else None,
            checklist=tuple(CheckItem(**item) for item in data["checklist"]),
            dependent_services=tuple(data.get("dependent_services", ())),
            kind=data.get("kind", "traffic"),
            headline=data.get("headline", ""),
            action=data.get("action", ""),
            will_serve=data.get("will_serve", ""),
            changes=tuple(data.get("changes", ())),
            warnings=tuple(data.get("warnings", ())),
            command=data.get("command", ""),
            question=data.get("question", ""),
            pins=bool(data.get("pins", "kind" not in data)),  # old plans: traffic, pinned
            alternatives=tuple(data.get("alternatives", ())),
            staged=data.get("staged", ""),
            preferred=data.get("preferred", ""),
            escalate=tuple(data.get("escalate", ())),
            services=tuple(data.get("services", ())),
            remedy=data.get("remedy"),
            override=data.get("override"),
            immediate=bool(data.get("immediate", False)),
            verifies=tuple(data.get("verifies", ())),
        )


@dataclasses.dataclass(frozen=True)
class PlanError:
    """Why no plan could be made (unknown revision, Cloud Run unreachable, …)."""

    problem: str
    hint: str


def primary_revision(state: ServiceState) -> str | None:
    serving = state.serving()
    return max(serving.items(), key=lambda kv: kv[1])[0] if serving else None


def runbook_checklist(catalog: Catalog, service: str, checked: list[CheckItem],
                      target_words: str) -> tuple[CheckItem, ...]:
    """The runbook's pre-rollback checklist: what the kind checked first, then the
    runbook's reminders, with "revision X" naming the real target."""
    svc = catalog.services[service]
    items = list(checked)
    for text in catalog.runbook.pre_rollback_checklist:
        if "identify target revision" in text.lower():
            continue  # the kind's own first item says which target it identified
        detail = ""
        if "dependent services" in text.lower() and svc.dependent_services:
            detail = ", ".join(svc.dependent_services)
        items.append(CheckItem(text.replace("revision X", target_words), "todo", detail))
    return tuple(items)


@dataclasses.dataclass(frozen=True)
class ServiceFacts:
    """What a plan of any Cloud Run kind starts from: the service and what serves now."""

    service: str
    cloud_run_service: str
    region: str
    state: ServiceState
    current: RevisionFacts | None
    dependent_services: tuple[str, ...]


async def read_service_facts(catalog: Catalog, cloud_run: CloudRun,
                             service: str) -> ServiceFacts | PlanError:
    svc = catalog.services[service]
    region = catalog.region_of(service)
    try:
        state = await cloud_run.get_service(svc.cloud_run_service, region)
        primary = primary_revision(state)
        current = (RevisionFacts.of(await cloud_run.get_revision(
            svc.cloud_run_service, region, primary)) if primary else None)
    except GoogleCallError as exc:
        return cloud_run_problem(exc, service, svc.cloud_run_service)
    return ServiceFacts(service, svc.cloud_run_service, region, state, current,
                        tuple(svc.dependent_services))


def cloud_run_problem(exc: GoogleCallError, service: str, cloud_run_service: str) -> PlanError:
    reach = "Couldn't reach Cloud Run" if exc.transient else "Cloud Run refused"
    return PlanError(
        f"{reach} while planning a change of `{service}` ({cloud_run_service}): {exc.message}",
        "Nothing was changed. Try again in a minute.")
