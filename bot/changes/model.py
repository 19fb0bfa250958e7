"""A change (what the flow carries, whatever its kind) and its states.

proposed ──confirm──▶ confirmed ──▶ executing ──▶ verifying ──▶ succeeded
    └──cancel──▶ cancelled                 │  └─────────────┴──────▶ failed
                                           └──▶ rolling_out ──▶ verifying
                                                     └─────────▶ failed (aborted)

`rolling_out`: a staged change (a gradual rollback) between its first step and its
last, moved on by scheduled jobs (bot/workflow/rollout.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import StrEnum
from typing import Any


class State(StrEnum):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    EXECUTING = "executing"
    ROLLING_OUT = "rolling_out"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({State.PROPOSED, State.CONFIRMED, State.EXECUTING,
                           State.ROLLING_OUT, State.VERIFYING})
FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})

# Which state may follow which: every transition in the store is checked against this.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.PROPOSED: frozenset({State.CONFIRMED, State.CANCELLED, State.FAILED}),
    State.CONFIRMED: frozenset({State.EXECUTING, State.FAILED}),
    State.EXECUTING: frozenset({State.VERIFYING, State.ROLLING_OUT, State.FAILED}),
    State.ROLLING_OUT: frozenset({State.VERIFYING, State.FAILED}),
    State.VERIFYING: frozenset({State.SUCCEEDED, State.FAILED}),
    State.SUCCEEDED: frozenset(),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
}


def can_transition(current: State, new: State) -> bool:
    return new in TRANSITIONS[current]


class Verdict(StrEnum):
    VERIFIED = "verified"
    DEGRADED = "degraded"
    FAILED = "failed"
    ABORTED = "aborted"  # a staged change stopped and put back as it was


@dataclasses.dataclass(frozen=True)
class Change:
    """One runbook action on one subject: a traffic rollback, an image or env change…

    `kind` names the module that plans, applies and undoes it (bot/changes/kinds/);
    `spec` (what it will do), `before` and `after` are that kind's own JSON. The rest
    is the flow's, the same for every kind.
    """

    id: int
    kind: str
    subject: str  # one active change per subject (for Cloud Run kinds: the service key)
    service: str  # catalog key of the service it touches (whose checks verify it)
    spec: dict[str, Any]
    before: dict[str, Any]  # what was there when it was planned
    after: dict[str, Any] | None  # what the outside system says after the change
    state: State
    requested_by: str
    confirmed_by: str | None
    channel_id: str
    card_ts: str | None  # the plan card's message ts
    thread_ts: str | None  # the announcement's ts: every later line goes in its thread
    summary_ts: str | None  # the top-of-thread summary kept current with chat.update
    verdict: str | None
    error: str | None
    dry_run: bool
    plan: dict[str, Any]  # the Plan as JSON (bot.plans.Plan.to_json)
    created_at: dt.datetime
    updated_at: dt.datetime
    cancelled_by: str | None = None
    finished_at: dt.datetime | None = None  # set exactly when the state is final
    baseline: dict[str, Any] | None = None  # bot.judgement.Measurement before any change
    analysis: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # after it
    rollout: dict[str, Any] | None = None  # a staged change's steps (bot.changes.rollout)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES
