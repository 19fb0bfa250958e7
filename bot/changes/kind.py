"""The one protocol every change kind implements, and the values it trades.

The workflow (bot/workflow/) moves a change through plan → confirm → gate → apply →
read back → verify knowing only this protocol; each kind (bot/changes/kinds/<kind>.py)
knows its outside system. See docs/architecture.md, "Adding a change kind".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.catalog import Catalog
from bot.checks import CheckResult
from bot.judgement import Measurement
from bot.messages.base import Message
from bot.parsing import CommandError
from bot.plans import Plan, PlanError

if TYPE_CHECKING:
    import datetime as dt

    from bot.authz import Rules
    from bot.changes.model import Change
    from bot.changes.rollout import RolloutPolicy
    from bot.deps import Deps


@dataclasses.dataclass(frozen=True)
class Usage:
    """One line of `/rollback help` and of the parser's usage text."""

    syntax: str  # "/rollback <service> --image <tag>"
    does: str  # "redeploy the service with another image"


@dataclasses.dataclass(frozen=True)
class ChangeRequest:
    """What someone asked for: a kind, the service it touches and the kind's arguments
    (JSON-safe: it travels as a job argument)."""

    kind: str
    service: str
    args: dict[str, Any]
    dry_run: bool = False
    undo_of: int | None = None  # the change this one reverses (an Undo click)
    # What it holds while active, when not the service itself (a secret's change holds
    # the secret: enabling a version needs no service's slot).
    subject: str | None = None


@dataclasses.dataclass(frozen=True)
class PlannedChange:
    """A kind's plan: the card's words, and its own JSON for applying and undoing."""

    plan: Plan
    subject: str  # one active change per subject
    spec: dict[str, Any]  # what apply will do
    before: dict[str, Any]  # what was there (what an undo restores)


@dataclasses.dataclass(frozen=True)
class Applied:
    """What the outside system says after the change (read back, not assumed)."""

    after: dict[str, Any]  # stored with the change
    check: CheckResult  # the read-back as the first verification check


class ChangeFailed(Exception):
    """The change did not go through. `report` says so in the thread, with what the
    outside system has now (read back, not assumed); `unchanged` whether that is as
    before; `after` that read, stored with the change (None: it could not be read)."""

    def __init__(self, error: str, *, report: Message, unchanged: bool,
                 after: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.report = report
        self.unchanged = unchanged
        self.after = after


class PlanDrift(Exception):
    """What the plan showed has changed since (another deploy, someone else's change):
    nothing was changed. `what` says what moved, in plain words."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Prefetch(Protocol):
    """A read a kind starts before the gate (authorize, announce, audit), so the
    outside system's answer is on its way while the gate runs."""

    subject: str

    def cancel(self) -> None: ...


class ChangeKind(Protocol):
    name: str  # a KindName value
    options: Mapping[str, bool]  # the `--options` it reads -> whether each takes a value

    def usage(self) -> Sequence[Usage]: ...

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | CommandError | None:
        """`/rollback <service> …` words (no network): its request, a clear error, or
        None when the words are not this kind's."""
        ...

    async def plan(self, deps: Deps, request: ChangeRequest) -> PlannedChange | PlanError:
        """Read the outside system and say what the change will do; change nothing."""
        ...

    async def dry_run(self, deps: Deps, planned: PlannedChange) -> str | None:
        """Ask the outside system to validate the change without making it; its answer."""
        ...

    def prefetch(self, deps: Deps, subject: str) -> Prefetch | None:
        """Start the read `apply` begins with (None: this kind has none)."""
        ...

    async def apply(self, deps: Deps, change: Change, prefetch: Prefetch | None) -> Applied:
        """Make the change (the gate has passed) and read back the outcome. Raises
        PlanDrift (nothing changed) or ChangeFailed."""
        ...

    async def read_back(self, deps: Deps, change: Change) -> CheckResult:
        """The first check again, from a fresh read (a resumed verification)."""
        ...

    def measured_revision(self, change: Change) -> str | None:
        """The revision whose metrics the deep verification measures, if any."""
        ...

    def undo(self, change: Change) -> ChangeRequest | None:
        """The exact inverse of a finished change; None when it changed nothing."""
        ...


@dataclasses.dataclass(frozen=True)
class StepObservation:
    """One look at a staged change's step: the target beside what it replaces."""

    target: Measurement
    replaced: Measurement
    checks: tuple[CheckResult, ...]  # the target's own URL (health, ready)
    apart: bool  # whether the metrics told the revisions apart
    link: str = ""  # where people read the target's metrics themselves


@runtime_checkable
class StagedKind(ChangeKind, Protocol):
    """A kind whose change goes in steps (a gradual rollback): `apply` makes the first
    step; the rollout (bot/workflow/rollout.py) holds, analyses and moves it on."""

    def rollout_target(self, change: Change) -> str:
        """What the steps move to (a revision), as the rollout's words name it."""
        ...

    def rollout_policy(self, deps: Deps, change: Change) -> RolloutPolicy:
        """Its steps, their hold, the analysis interval and the failure limit (data,
        from the catalog)."""
        ...

    async def set_step(self, deps: Deps, change: Change, percent: int) -> Applied:
        """The split of a step (the target at `percent`), read back. Safe to repeat."""
        ...

    async def complete(self, deps: Deps, change: Change) -> Applied:
        """All the way: the target at 100%, the step's marks removed (one update)."""
        ...

    async def restore(self, deps: Deps, change: Change) -> Applied:
        """Exactly what was there before the first step, marks removed, read back."""
        ...

    async def observe(self, deps: Deps, change: Change, start: dt.datetime,
                      end: dt.datetime) -> StepObservation:
        """The target's and the replaced revisions' metrics over (start, end], and the
        target's own checks."""
        ...


def staged(kind: ChangeKind) -> StagedKind | None:
    return kind if isinstance(kind, StagedKind) else None


@dataclasses.dataclass(frozen=True)
class FinalStep:
    """A step held for a second confirmation after the verdict (Confirm's rules)."""

    label: str  # its button: "Disable version 7"
    question: str  # its confirm dialog
    pending: str  # what the summary says until it is done
    done: bool


@runtime_checkable
class HeldStepKind(ChangeKind, Protocol):
    """A kind whose last step waits, after verification, for a second confirmation in
    the thread (a secret rollback's disable of the old version). The verdict does not
    wait for it."""

    def final_step(self, change: Change) -> FinalStep | None:
        """The held step of this change, done or not; None if it has none."""
        ...

    async def run_final_step(self, deps: Deps, change: Change, actor: str) -> dict[str, Any]:
        """Do it (audited, with `actor`); the change's `after` with it done. Raises
        GoogleCallError when the outside system refuses."""
        ...


def held_step(kind: ChangeKind) -> HeldStepKind | None:
    return kind if isinstance(kind, HeldStepKind) else None


@runtime_checkable
class OwnRulesKind(ChangeKind, Protocol):
    """A kind whose request and confirm rules are not a catalog service's (a flag or
    kill-switch group's approvers)."""

    def rules(self, catalog: Catalog, args: Mapping[str, Any]) -> tuple[str, Rules] | None:
        """(what the rules belong to, e.g. "flag group app"; the rules), or None when
        that is no longer in the catalog."""
        ...


def own_rules(kind: ChangeKind) -> OwnRulesKind | None:
    return kind if isinstance(kind, OwnRulesKind) else None
