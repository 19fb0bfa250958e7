"""A staged change's rollout as data: its policy (from the catalog), where it stands
(step, clock, pause), its failed analyses and what each step and analysis saw.

Stored with the change (`changes.rollout`, JSON) and moved on only under the
change's rollout lock (bot/workflow/rollout.py): every move bumps `seq`, and a
scheduled job names the `seq` it was deferred for, so a job made stale by a click
(or run twice by two replicas) finds another number and does nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from bot.catalog import GradualSection


@dataclasses.dataclass(frozen=True)
class RolloutPolicy:
    steps: tuple[int, ...]  # the target's percent at each step; the last is 100
    step_seconds: float  # how long a step is held once its traffic change is done
    interval_seconds: float  # how often a step is analysed
    failure_limit: int  # failed analyses over the whole rollout that abort it

    @classmethod
    def of(cls, section: GradualSection) -> RolloutPolicy:
        return cls(tuple(section.steps), section.step_seconds,
                   section.analysis_interval_seconds, section.failure_limit)

    def describe(self) -> str:
        """"50% → 100%, each step held 5 min, analysed every 60 s, aborts after 2 failed
        analyses" (the plan card's words)."""
        return (" → ".join(f"{p}%" for p in self.steps)
                + f", each step held {duration(self.step_seconds)}, analysed every "
                  f"{duration(self.interval_seconds)}, aborts after {self.failure_limit} "
                  f"failed analys{'i' if self.failure_limit == 1 else 'e'}s")


def duration(seconds: float) -> str:
    """90 -> "1m 30s", 300 -> "5 min", 45 -> "45 s"."""
    seconds = max(0, math.ceil(seconds))
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min" if not rest else f"{minutes}m {rest:02d}s"


def split_for(before: Mapping[str, int], target: str, percent: int) -> dict[str, int]:
    """The traffic at a step: `target` gets `percent`; the revisions serving before
    (the target's own old share aside) share the rest in their old proportions,
    rounded to whole percents by largest remainder so the split sums to 100
    (80/20 before, 50% step: 50/40/10)."""
    if not 0 < percent <= 100:
        raise ValueError(f"a step is 1..100 percent, not {percent}")
    others = {rev: pct for rev, pct in before.items() if rev != target and pct > 0}
    rest = 100 - percent
    if not rest or not others:
        return {target: 100}
    weight = sum(others.values())
    exact = {rev: rest * pct / weight for rev, pct in others.items()}
    shares = {rev: math.floor(value) for rev, value in exact.items()}
    left = rest - sum(shares.values())
    # Largest fractional part first; ties to the larger old share, then by name.
    for rev in sorted(exact, key=lambda r: (-(exact[r] - shares[r]), -others[r], r))[:left]:
        shares[rev] += 1
    split = {target: percent}
    split.update({rev: pct for rev, pct in shares.items() if pct})
    return split


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclasses.dataclass(frozen=True)
class Rollout:
    policy: RolloutPolicy
    target: str  # the revision the steps move traffic to
    before: dict[str, int]  # the split before the first step (what Abort restores)
    step: int  # index into policy.steps
    seq: int  # bumped by every move; scheduled jobs carry the seq they were for
    step_started_at: dt.datetime  # the step's traffic change was done (its clock starts)
    step_ends_at: dt.datetime | None  # running: when the hold ends
    remaining_seconds: float | None = None  # paused: what the step had left
    paused: str | None = None  # why it holds (a click, inconclusive metrics, a restart)
    failures: int = 0
    window_start: dt.datetime | None = None  # where the next analysis' window begins
    next_due: dt.datetime | None = None  # when the scheduled job is due
    analyses: tuple[dict[str, Any], ...] = ()
    history: tuple[dict[str, Any], ...] = ()  # each step: percent, traffic, at

    @property
    def percent(self) -> int:
        return self.policy.steps[self.step]

    @property
    def last_step(self) -> bool:
        return self.step == len(self.policy.steps) - 1

    def time_left(self, now: dt.datetime) -> float:
        if self.paused is not None or self.step_ends_at is None:
            return max(0.0, self.remaining_seconds or 0.0)
        return max(0.0, (self.step_ends_at - now).total_seconds())

    def next_check(self, now: dt.datetime) -> dt.datetime:
        """The next analysis: an interval on, or the step's end if that comes first."""
        due = now + dt.timedelta(seconds=self.policy.interval_seconds)
        if self.step_ends_at is not None and self.step_ends_at < due:
            return max(now, self.step_ends_at)
        return due

    def moved(self, **changes: Any) -> Rollout:
        return dataclasses.replace(self, seq=self.seq + 1, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": dataclasses.asdict(self.policy), "target": self.target,
            "before": dict(self.before), "step": self.step, "seq": self.seq,
            "step_started_at": _iso(self.step_started_at),
            "step_ends_at": _iso(self.step_ends_at),
            "remaining_seconds": self.remaining_seconds, "paused": self.paused,
            "failures": self.failures, "window_start": _iso(self.window_start),
            "next_due": _iso(self.next_due), "analyses": list(self.analyses),
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollout:
        policy = data["policy"]
        started = _time(data["step_started_at"])
        assert started is not None
        return cls(
            policy=RolloutPolicy(tuple(policy["steps"]), float(policy["step_seconds"]),
                                 float(policy["interval_seconds"]),
                                 int(policy["failure_limit"])),
            target=str(data["target"]),
            before={str(k): int(v) for k, v in data["before"].items()},
            step=int(data["step"]), seq=int(data["seq"]), step_started_at=started,
            step_ends_at=_time(data.get("step_ends_at")),
            remaining_seconds=data.get("remaining_seconds"), paused=data.get("paused"),
            failures=int(data.get("failures", 0)),
            window_start=_time(data.get("window_start")),
            next_due=_time(data.get("next_due")),
            analyses=tuple(data.get("analyses", ())), history=tuple(data.get("history", ())))
