"""The gradual rollout as data: the split at each step, the clock, its JSON, the
policy's validation and words, the step judgement and the progress line."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.catalog import CatalogError, GradualSection, VerificationSection, parse_catalog
from bot.changes.rollout import Rollout, RolloutPolicy, duration, split_for
from bot.judgement import Measurement, Outcome, judge_step
from bot.messages.rollout import progress

T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
POLICY = RolloutPolicy((50, 100), 300.0, 60.0, 2)


@pytest.mark.parametrize("before, percent, expected", [
    ({"old": 100}, 50, {"new": 50, "old": 50}),
    ({"a": 80, "b": 20}, 50, {"new": 50, "a": 40, "b": 10}),  # the example
    ({"a": 1, "b": 1, "c": 1}, 50, {"new": 50, "a": 17, "b": 17, "c": 16}),
    ({"a": 67, "b": 33}, 25, {"new": 25, "a": 50, "b": 25}),
    ({"new": 20, "old": 80}, 50, {"new": 50, "old": 50}),  # the target's own share is replaced
    ({"old": 100}, 100, {"new": 100}),
    ({"a": 99, "b": 1}, 90, {"new": 90, "a": 10}),  # a share rounding to 0 is left out
])
def test_split_gives_the_rest_in_old_proportions_summing_to_100(
        before: dict[str, int], percent: int, expected: dict[str, int]) -> None:
    split = split_for(before, "new", percent)
    assert split == expected
    assert sum(split.values()) == 100


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_split_refuses_impossible_steps(percent: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.100"):
        split_for({"old": 100}, "new", percent)


def _rollout(**changes: object) -> Rollout:
    base = Rollout(POLICY, target="new", before={"old": 100}, step=0, seq=1,
                   step_started_at=T0, step_ends_at=T0 + dt.timedelta(seconds=300),
                   window_start=T0)
    return Rollout(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_next_check_is_an_interval_on_or_the_step_end_if_sooner() -> None:
    rollout = _rollout()
    assert rollout.next_check(T0) == T0 + dt.timedelta(seconds=60)
    late = T0 + dt.timedelta(seconds=280)
    assert rollout.next_check(late) == T0 + dt.timedelta(seconds=300)


def test_a_paused_step_keeps_the_time_it_had_left() -> None:
    paused = _rollout(paused="paused by <@U0BOB>", step_ends_at=None, remaining_seconds=200.0)
    assert paused.time_left(T0 + dt.timedelta(hours=5)) == 200.0


def test_moves_bump_seq_and_json_round_trips() -> None:
    moved = _rollout().moved(failures=1, analyses=({"number": 1, "outcome": "fail"},))
    assert moved.seq == 2
    again = Rollout.from_json(moved.to_json())
    assert again == moved


def test_progress_line_shows_step_percent_time_left_and_a_bar() -> None:
    line = progress(_rollout(), T0 + dt.timedelta(seconds=100))
    assert line == "Step 1/2 · 50% · 3m 20s left ▰▰▰▱▱▱▱▱▱▱"
    held = progress(_rollout(paused="metrics unknown", step_ends_at=None,
                             remaining_seconds=150.0), T0)
    assert "⏸ paused (metrics unknown)" in held and "▰▰▰▰▰▱▱▱▱▱" in held


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0, 45, 60, 90, 300, 0.2)] == [
        "0 s", "45 s", "1 min", "1m 30s", "5 min", "1 s"]


def test_policy_words_for_the_card() -> None:
    assert POLICY.describe() == ("50% → 100%, each step held 5 min, analysed every 1 min, "
                                 "aborts after 2 failed analyses")


@pytest.mark.parametrize("steps, problem", [
    ([50, 50, 100], "more than the last"),
    ([70, 30, 100], "more than the last"),
    ([50, 90], "must be 100"),
    ([0, 100], "greater than or equal to 1"),
    ([], "at least 1"),
])
def test_catalog_refuses_bad_steps(steps: list[int], problem: str) -> None:
    text = f"""
[gcp]
project = "p"
region = "europe-west3"
[services.api]
cloud_run_service = "medicalcor-api"
[services.api.gradual]
steps = {steps}
"""
    with pytest.raises(CatalogError, match=problem) as caught:
        parse_catalog(text, "rollbot.toml")
    assert "services.api.gradual.steps" in str(caught.value)


def test_catalog_defaults_follow_the_runbook() -> None:
    section = GradualSection()
    assert (section.steps, section.step_seconds, section.analysis_interval_seconds,
            section.failure_limit) == ([50, 100], 300.0, 60.0, 2)


POLICY_V = VerificationSection(max_error_rate=0.05, max_p95_latency_ms=500, min_requests=20)


def _m(**values: object) -> Measurement:
    return Measurement(label="step", source="Cloud Monitoring (new)", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("target, checks, outcome, reason", [
    (_m(error_rate=0.01, p95_latency_ms=120, requests=600), [], Outcome.PASS, ""),
    (_m(error_rate=0.2, p95_latency_ms=120, requests=600), [], Outcome.FAIL, "5xx rate 20.00%"),
    (_m(error_rate=0.0, p95_latency_ms=900, requests=600), [], Outcome.FAIL, "p95 latency 900"),
    (_m(error_rate=0.0, p95_latency_ms=100, requests=600), [("health", False, "503")],
     Outcome.FAIL, "health on the target's URL: 503"),
    # Too few requests: noise, even when it looks bad; a human decides.
    (_m(error_rate=1.0, p95_latency_ms=100, requests=5), [], Outcome.INCONCLUSIVE,
     "fewer than `min_requests` 20"),
    (_m(metrics_problems=("Cloud Monitoring unavailable: deadline",)), [],
     Outcome.INCONCLUSIVE, "Cloud Monitoring unavailable"),
    (Measurement(label="step", source="none"), [], Outcome.INCONCLUSIVE,
     "no metrics source"),
])
def test_a_step_is_judged_by_the_target_alone_and_no_data_is_never_a_pass(
        target: Measurement, checks: list[tuple[str, bool, str]], outcome: Outcome,
        reason: str) -> None:
    judgement = judge_step(target, checks, POLICY_V)
    assert judgement.outcome == outcome
    assert reason in " ".join(judgement.reasons)
