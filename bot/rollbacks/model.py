"""A rollback row and its states.

proposed ──confirm──▶ confirmed ──▶ executing ──▶ verifying ──▶ succeeded
    └──cancel──▶ cancelled                 └─────────────┴──────▶ failed
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
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = frozenset({State.PROPOSED, State.CONFIRMED, State.EXECUTING, State.VERIFYING})
FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})

# Which state may follow which: every transition in the store is checked against this.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.PROPOSED: frozenset({State.CONFIRMED, State.CANCELLED, State.FAILED}),
    State.CONFIRMED: frozenset({State.EXECUTING, State.FAILED}),
    State.EXECUTING: frozenset({State.VERIFYING, State.FAILED}),
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


@dataclasses.dataclass(frozen=True)
class Rollback:
    id: int
    service: str  # catalog key
    cloud_run_service: str
    target_revision: str
    mode: str  # full | gradual
    state: State
    traffic_before: dict[str, int]  # revision -> percent, as Cloud Run served it at proposal
    traffic_after: dict[str, int] | None
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
    # Added with migration 0002; defaulted so older constructors keep working.
    cancelled_by: str | None = None
    finished_at: dt.datetime | None = None  # set exactly when the state is final
    baseline: dict[str, Any] | None = None  # bot.judgement.Measurement before any change
    analysis: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # after it

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES
