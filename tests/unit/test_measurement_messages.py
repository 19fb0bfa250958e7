"""The measurement table's title agrees with its rows, and the verdict line with both."""

from __future__ import annotations

import itertools

import pytest

from bot.catalog import VerificationSection
from bot.changes.model import Verdict
from bot.judgement import Judgement, Measurement, Outcome, Row, compare, judge
from bot.messages.measurements import measurement_table, table_status, verdict_line
from tests.unit.test_messages import all_text, assert_within_limits

POLICY = VerificationSection(max_error_rate=0.01, max_p95_latency_ms=1000, min_requests=100)
METRICS = ("5xx rate", "p95 latency", "errors in logs")
REASONS = {Outcome.PASS: "", Outcome.FAIL: "20.00%, above 1.00%",
           Outcome.INCONCLUSIVE: "15 requests, fewer than `min_requests` 100"}


def _rows(outcomes: tuple[Outcome, ...]) -> list[Row]:
    return [Row(metric, "—", "—", "—", outcome, "≤ 1", REASONS[outcome])
            for metric, outcome in zip(METRICS, outcomes, strict=True)]


@pytest.mark.parametrize("outcomes", list(itertools.product(Outcome, repeat=len(METRICS))),
                         ids=lambda o: "-".join(o))
def test_the_title_says_what_the_rows_say(outcomes: tuple[Outcome, ...]) -> None:
    rows = _rows(outcomes)
    title = table_status(rows)
    all_passed = all(o == Outcome.PASS for o in outcomes)
    assert ("✅ within thresholds" in title) == all_passed
    assert (judge(True, rows).verdict == Verdict.VERIFIED) == all_passed
    failing = [r.metric for r in rows if r.outcome == Outcome.FAIL]
    unknown = [r.metric for r in rows if r.outcome == Outcome.INCONCLUSIVE]
    if failing:
        assert f"❌ {', '.join(failing)}" in title
    if unknown:
        assert f"❔ inconclusive: {', '.join(unknown)}: {REASONS[Outcome.INCONCLUSIVE]}" in title
    assert ("❌" in title) == bool(failing) and ("❔" in title) == bool(unknown)


def test_too_few_requests_titles_the_table_inconclusive_with_the_count() -> None:
    after = Measurement("immediately", "Cloud Monitoring (api-00014-def)", error_rate=0.0,
                        p95_latency_ms=80, requests=15, log_errors=0, log_window_seconds=30)
    message = measurement_table("api", after, compare(None, after, POLICY))
    assert message.text == ("Metrics immediately for api: ❔ inconclusive: 5xx rate, "
                            "p95 latency: 15 requests, fewer than `min_requests` 100")
    assert "within thresholds" not in all_text(message)
    assert_within_limits(message)


def test_no_metrics_titles_the_table_with_both_sources_failures() -> None:
    after = Measurement("after 2 min", "none", metrics_problems=(
        "Cloud Monitoring unavailable: <injected>",
        "metrics at http://127.0.0.1:9/api/metrics answered 503 Service Unavailable, not 200"),
        log_errors=0, log_window_seconds=120)
    message = measurement_table("api", after, compare(None, after, POLICY))
    head = message.blocks_json()[0]["text"]["text"]
    assert ("❔ inconclusive: 5xx rate, p95 latency: Cloud Monitoring unavailable: "
            "&lt;injected&gt; and metrics at http://127.0.0.1:9/api/metrics answered 503") in head
    assert "✅" not in head
    assert_within_limits(message)


def test_verdict_line_says_the_verdict_and_why() -> None:
    judgement = Judgement(Verdict.DEGRADED, ("metrics unknown (5xx rate: <no data>)",))
    message = verdict_line("api", judgement, notes=["Thresholds come from `x`."])
    assert message.text == "⚠️ api: *degraded* — metrics unknown (5xx rate: <no data>)"
    text = all_text(message)
    assert "Why: metrics unknown (5xx rate: &lt;no data&gt;)" in text
    assert "Thresholds come from `x`." in text
    assert_within_limits(message)
    verified = verdict_line("Final verdict after 2 measurements", Judgement(Verdict.VERIFIED))
    assert verified.text == "✅ Final verdict after 2 measurements: *verified*"
    assert "Why" not in all_text(verified)
