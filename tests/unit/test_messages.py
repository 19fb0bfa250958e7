"""Message builders: content people act on at 3 a.m., and Slack's limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import RunbookSection, load_catalog
from bot.changes.model import Change, State
from bot.checks import CheckResult
from bot.ids import RollbackAction, RollbackBlock, kind_and_subject_of_plan_actions
from bot.messages import refusals, thread
from bot.messages.base import Message
from bot.messages.history import history_message
from bot.messages.plan import plan_card
from bot.plans import CheckItem, Plan, RevisionFacts
from bot.verification import serving_check

CURRENT = "medicalcor-api-00015-abc"
TARGET = "medicalcor-api-00014-def"
T0 = dt.datetime(2024, 5, 1, 3, 0, tzinfo=dt.UTC)
RUNBOOK = load_catalog(Path(__file__).parents[2] / "rollbot.toml").runbook


def make_plan(*, checklist: tuple[CheckItem, ...] | None = None,
              traffic: dict[str, int] | None = None) -> Plan:
    return Plan(
        service="api",
        cloud_run_service="medicalcor-api",
        region="europe-west3",
        current_traffic=traffic if traffic is not None else {CURRENT: 90, TARGET: 10},
        current=RevisionFacts(CURRENT, "eu.pkg.dev/mc/api:1.15", T0, "dev@mc.com", True),
        target=RevisionFacts(TARGET, "eu.pkg.dev/mc/api:1.14", T0 - dt.timedelta(1), None, True),
        checklist=checklist if checklist is not None else (
            CheckItem("Target revision exists and is Ready", "ok", "Ready"),
            CheckItem("Check for database migrations that may conflict", "todo"),
            CheckItem("Identify dependent services", "todo", "web, trigger"),
        ),
        dependent_services=("web", "trigger"),
    )


BLOCKED_CHECKLIST = (CheckItem("Target revision exists and is Ready", "fail",
                               "not Ready: image pull failed"),
                     CheckItem("Check for database migrations that may conflict", "todo"))


def make_rollback(**overrides: Any) -> Change:
    """A traffic rollback, every field set; fields added to Change later get None unless
    overridden. `traffic_before` / `traffic_after` set the kind's before and after."""
    before = overrides.pop("traffic_before", {CURRENT: 100})
    after = overrides.pop("traffic_after", None)
    values: dict[str, Any] = {
        "id": 42, "kind": "traffic", "subject": "api", "service": "api",
        "spec": {"cloud_run_service": "medicalcor-api", "region": "europe-west3",
                 "traffic": {TARGET: 100}},
        "before": {"traffic": before, "latest": False},
        "after": None if after is None else {"traffic": after},
        "state": State.PROPOSED,
        "requested_by": "UA", "confirmed_by": None, "channel_id": "C1",
        "card_ts": "1.1", "thread_ts": None, "summary_ts": None, "verdict": None,
        "error": None, "dry_run": False, "plan": make_plan().to_json(),
        "created_at": T0, "updated_at": T0,
    }
    values.update(overrides)
    kwargs: dict[str, Any] = {f.name: values.get(f.name) for f in dataclasses.fields(Change)}
    return Change(**kwargs)


def result(name: str, ok: bool = True, **kw: Any) -> CheckResult:
    values: dict[str, Any] = {
        "url": f"https://api.medicalcor.com/{name}", "status": 200 if ok else 503,
        "detail": "200 healthy" if ok else "503 unhealthy", "elapsed_ms": 41.7}
    values.update(kw)
    return CheckResult(name=name, ok=ok, **values)


# --- Slack limits --------------------------------------------------------------------


def assert_within_limits(message: Message) -> None:
    assert message.text.strip(), "fallback text must be meaningful"
    assert len(message.text) <= 3000
    blocks = message.blocks_json()  # to_dict() runs slack_sdk's validators
    assert len(blocks) <= 50
    action_ids: list[str] = []
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        kind = block["type"]
        if kind == "section":
            assert "text" in block or "fields" in block
            assert 0 < len(block.get("text", {"text": "x"})["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(0 < len(f["text"]) <= 2000 for f in block.get("fields", []))
        elif kind == "header":
            assert 0 < len(block["text"]["text"]) <= 150
        elif kind == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            assert 0 < len(block["elements"]) <= 25
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= 75
                assert len(button["value"]) <= 2000
                assert len(button["action_id"]) <= 255
                action_ids.append(button["action_id"])
                confirm = button.get("confirm", {"title": {"text": ""}, "text": {"text": ""}})
                assert len(confirm["title"]["text"]) <= 100 and len(confirm["text"]["text"]) <= 300
        else:
            assert kind == "divider", kind
    assert len(action_ids) == len(set(action_ids))


def all_text(message: Message) -> str:
    """Everything a reader sees: fallback text plus every text in the blocks."""
    out = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            values = node.values() if isinstance(node, dict) else node
            out.extend([node["text"]] if isinstance(node, dict) and isinstance(
                node.get("text"), str) else [])
            for value in values:
                walk(value)

    walk(message.blocks_json())
    return "\n".join(out)


def actions(message: Message) -> list[dict[str, Any]]:
    return [b for b in message.blocks_json() if b["type"] == "actions"]


LONG = "x" * 250
LONG_PLAN = dataclasses.replace(
    make_plan(traffic={f"medicalcor-api-{i:05d}-{'a' * 40}": 1 for i in range(60)},
              checklist=tuple(CheckItem(f"{i} {LONG}", ("ok", "fail", "todo")[i % 3], LONG)
                              for i in range(40))),
    target=RevisionFacts(TARGET, "i" * 3000, T0, "c" * 500, False),
    dependent_services=tuple(f"svc-{i}-{LONG}" for i in range(40)),
)
LONG_RUNBOOK = RunbookSection(post_rollback_checklist=[LONG] * 40, restrictions=[LONG] * 40)
LONG_RESULTS = [result(f"smoke {i} {LONG}", ok=i % 2 == 0, detail=LONG, attempts=3,
                       dependencies={f"dep{j}": LONG for j in range(20)}) for i in range(60)]
LONG_TRAFFIC = {f"rev-{i}-{LONG}": 1 for i in range(60)}
LONG_ROLLBACKS = [make_rollback(id=i, state=State.FAILED, error="e" * 10_000,
                                created_at=T0 + dt.timedelta(minutes=i)) for i in range(30)]


def long_card(state: State) -> Message:
    rollback = make_rollback(state=state, error="e" * 9000, confirmed_by="UB")
    return plan_card(LONG_PLAN, rollback, final_note=LONG * 20)


BUILDERS: dict[str, Callable[[], Message]] = {
    **{f"plan_card[{s.value}]": functools.partial(long_card, s) for s in State},
    "plan_card[unblocked]": lambda: plan_card(make_plan(), make_rollback()),
    "plan_card[dry]": lambda: plan_card(LONG_PLAN, None, dry_run=True),
    "announcement": lambda: thread.announcement(make_rollback(confirmed_by="UB")),
    "traffic_failed": lambda: thread.traffic_failed("e" * 9000, LONG_TRAFFIC, before={}),
    "traffic_failed[none]": lambda: thread.traffic_failed("e" * 9000, None),
    "check_line": lambda: thread.check_line(LONG_RESULTS[1]),
    "summary": lambda: thread.summary(make_rollback(), stage=LONG * 20, results=LONG_RESULTS),
    "verdict[ok]": lambda: thread.verdict_message(make_rollback(traffic_after=LONG_TRAFFIC),
                                                  LONG_RESULTS[::2], LONG_RUNBOOK),
    "verdict[failed]": lambda: thread.verdict_message(
        make_rollback(), LONG_RESULTS, LONG_RUNBOOK),
    "verdict[error]": lambda: thread.verdict_message(
        make_rollback(), [], LONG_RUNBOOK, error="e" * 9000),
    "recovery_note": lambda: thread.recovery_note(make_rollback(state=State.FAILED), LONG * 9),
    "history": lambda: history_message("api", LONG_ROLLBACKS),
    "history[empty]": lambda: history_message("api", []),
    "active_rollback_exists": lambda: refusals.active_rollback_exists(make_rollback(), "x"),
    "needs_second_person": refusals.needs_second_person,
    "not_an_approver": lambda: refusals.not_an_approver("api", [f"U{i:08}" for i in range(300)]),
    "not_incident_channel": lambda: refusals.not_incident_channel("^(inc|incident)[-_]"),
    "already_handled": lambda: refusals.already_handled(make_rollback(state=State.CANCELLED)),
    "not_a_requester": lambda: refusals.not_a_requester("api"),
    "plan_error": lambda: refusals.plan_error("p" * 9000, "h" * 9000),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_serializes_within_slack_limits(name: str) -> None:
    assert_within_limits(BUILDERS[name]())


# --- plan card -----------------------------------------------------------------------


def test_plan_card_proposed_has_everything_and_two_buttons() -> None:
    message = plan_card(make_plan(), make_rollback())
    blocks = message.blocks_json()
    assert blocks[0]["type"] == "header" and blocks[0]["block_id"] == RollbackBlock.PLAN_HEADER
    assert blocks[0]["text"]["text"] == f"Rollback plan: api → {TARGET}"
    text = all_text(message)
    assert "Serving now" in text and f"`{CURRENT}` 90%" in text and f"`{TARGET}` 10%" in text
    assert "Will serve" in text and f"`{TARGET}` 100%" in text
    assert "api:1.15`" in text and "api:1.14`" in text and "dev@mc.com" in text
    assert "2024-05-01 03:00 UTC" in text and "Ready" in text
    assert "✅ Target revision exists and is Ready — Ready" in text
    assert "☐ Check for database migrations that may conflict" in text
    assert "☐ Identify dependent services — web, trigger" in text
    assert "If rollbot is down, run by hand" in text
    assert f"```{make_plan().command}```" in text
    assert "Requested by <@UA> · needs confirmation from a second person" in text
    assert "Blocked" not in text

    [block] = actions(message)
    assert block["block_id"] == f"{RollbackBlock.PLAN_ACTIONS}:traffic:api"
    assert kind_and_subject_of_plan_actions(block["block_id"]) == ("traffic", "api")
    confirm, cancel = block["elements"]
    assert confirm["action_id"] == RollbackAction.CONFIRM
    assert confirm["value"] == "42" and confirm["style"] == "primary"
    assert confirm["confirm"]["text"]["text"].startswith("Shift 100% of api")
    assert TARGET in confirm["confirm"]["text"]["text"]
    assert cancel["action_id"] == RollbackAction.CANCEL and cancel["value"] == "42"
    assert message.text.startswith(f"Rollback plan: api → {TARGET}")


@pytest.mark.parametrize("state", [s for s in State if s != State.PROPOSED])
def test_plan_card_buttons_only_while_proposed(state: State) -> None:
    message = plan_card(make_plan(), make_rollback(state=state, confirmed_by="UB"))
    assert actions(message) == []


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"state": State.EXECUTING, "confirmed_by": "UB"}, "Confirmed by <@UB> · in progress"),
    ({"state": State.VERIFYING, "confirmed_by": "UB"}, "Confirmed by <@UB> · in progress"),
    ({"state": State.SUCCEEDED, "confirmed_by": "UB", "verdict": "verified"},
     "✅ Rollback verified"),
    ({"state": State.FAILED, "error": "Cloud Run: PERMISSION_DENIED <x>"},
     "❌ Rollback failed: Cloud Run: PERMISSION_DENIED &lt;x&gt;"),
    ({"state": State.CANCELLED, "cancelled_by": "UX"}, "Cancelled by <@UX>"),
])
def test_plan_card_status_line(overrides: dict[str, Any], expected: str) -> None:
    message = plan_card(make_plan(), make_rollback(**overrides))
    assert expected in all_text(message)


def test_blocked_plan_says_stop_and_has_no_confirm() -> None:
    message = plan_card(make_plan(checklist=BLOCKED_CHECKLIST), make_rollback())
    text = all_text(message)
    [buttons] = actions(message)
    assert [e["action_id"] for e in buttons["elements"]] == ["rollback.override",
                                                             "rollback.cancel"]
    assert "Blocked" in text and "Stop and escalate" in text
    assert "❌ Target revision exists and is Ready — not Ready: image pull failed" in text
    assert "BLOCKED" in message.text
    assert "needs confirmation" not in text


def test_dry_run_has_header_and_no_buttons() -> None:
    for rollback in (None, make_rollback()):
        message = plan_card(make_plan(), rollback, dry_run=True)
        assert message.blocks_json()[0]["text"]["text"] == (
            f"DRY RUN — Rollback plan: api → {TARGET}")
        assert actions(message) == []
        assert message.text.startswith("DRY RUN — ")
    assert "nothing was changed" in all_text(plan_card(make_plan(), None, dry_run=True))


def test_plan_card_final_note_and_no_current_revision() -> None:
    plan = dataclasses.replace(make_plan(traffic={}), current=None)
    message = plan_card(plan, make_rollback(state=State.FAILED, error="boom"),
                        final_note="Traffic unchanged.")
    text = all_text(message)
    assert "Traffic unchanged." in text and "nothing serving" in text


# --- thread --------------------------------------------------------------------------


def test_announcement_text_is_exact() -> None:
    message = thread.announcement(make_rollback(requested_by="UA", confirmed_by="UB"))
    expected = (f"Initiating rollback of api to revision {TARGET} "
                "(requested by <@UA>, confirmed by <@UB>)")
    assert message.text == expected
    assert message.blocks_json()[0]["text"]["text"] == expected


def test_serving_line_says_what_serves_and_what_served_before() -> None:
    ok = thread.check_line(serving_check({TARGET: 100}, {TARGET: 100}, {CURRENT: 100},
                                         elapsed_ms=163.2))
    assert ok.text == (f"✅ serving · {TARGET} 100%, as asked (before: {CURRENT} 100%) · 163 ms")


def test_serving_line_fails_on_other_traffic_or_no_read() -> None:
    split = thread.check_line(serving_check({TARGET: 100}, {TARGET: 50, CURRENT: 50},
                                            {CURRENT: 100}, elapsed_ms=51))
    assert split.text == (f"❌ serving · {TARGET} 50%, {CURRENT} 50%, "
                          f"but {TARGET} 100% was asked for · 51 ms")
    unread = serving_check({TARGET: 100}, None, {CURRENT: 100}, elapsed_ms=3,
                           error="Cloud Run unavailable: 503")
    assert not unread.ok
    assert thread.check_line(unread).text == (
        "❌ serving · could not read Cloud Run: Cloud Run unavailable: 503 · 3 ms")


def test_command_check_line_has_no_http_status() -> None:
    line = thread.check_line(CheckResult(name="smoke command: make smoke", url="", ok=True,
                                         status=0, detail="exit 0 after 1.2s",
                                         elapsed_ms=1200, kind="command"))
    assert line.text == "✅ smoke command: make smoke · exit 0 after 1.2s · 1200 ms"


def test_traffic_failed_reports_unchanged_unknown_or_changed() -> None:
    unchanged = all_text(thread.traffic_failed("PERMISSION_DENIED on run.services.update",
                                        {CURRENT: 100}))
    assert "PERMISSION_DENIED on run.services.update" in unchanged
    assert f"Traffic unchanged: Cloud Run serves `{CURRENT}` 100%" in unchanged
    unknown = all_text(thread.traffic_failed("timeout", None, cloud_run_service="medicalcor-api",
                                      region="europe-west3"))
    assert "could not read traffic back" in unknown
    assert "gcloud run services describe medicalcor-api --region=europe-west3" in unknown
    changed = all_text(thread.traffic_failed("timeout", {TARGET: 100}, before={CURRENT: 100}))
    assert "CHANGED" in changed and "unchanged" not in changed


def test_check_line() -> None:
    ready = thread.check_line(result("ready", dependencies={"database": "ok", "redis": "ok"},
                              attempts=2))
    text = all_text(ready)
    assert "✅ *ready* · 200 healthy · 42 ms · 2 attempts" in text
    assert "database: ok, redis: ok" in text
    down = thread.check_line(result("health", ok=False, status=None, detail="timeout after 5s"))
    assert down.text == "❌ health · no answer · timeout after 5s · 42 ms"


def test_summary_shows_stage_and_latest_result_per_check() -> None:
    results = [result("health", ok=False), result("health"), result("ready", ok=False)]
    message = thread.summary(make_rollback(confirmed_by="UB"), stage="Verifying (2/3 checks)…",
                      results=results)
    text = all_text(message)
    assert "Verifying (2/3 checks)…" in text
    assert "Checks: ✅ health · ❌ ready" in text
    assert "(1/2 checks passing)" in message.text
    assert "confirmed by <@UB>" in text


def test_verdict_verified_lists_post_rollback_checklist() -> None:
    message = thread.verdict_message(make_rollback(traffic_after={TARGET: 100}),
                                     [result("health"), result("ready")], RUNBOOK)
    text = all_text(message)
    assert "✅ *Rollback verified*" in text and "2/2 checks passed" in text
    for item in RUNBOOK.post_rollback_checklist:
        assert f"☐ {item.replace('&', '&amp;')}" in text
    assert "escalate" not in text


def test_verdict_failed_names_checks_and_restrictions() -> None:
    message = thread.verdict_message(
        make_rollback(traffic_after={TARGET: 100}),
        [result("health"), result("smoke: /api/v1/health", ok=False)], RUNBOOK)
    text = all_text(message)
    assert "❌ *Rollback failed* — 1/2 checks failed: smoke: /api/v1/health" in text
    assert "503 unhealthy" in text
    assert "Stop and escalate; do not roll back further blindly." in text
    for item in RUNBOOK.restrictions:
        assert item in text
    assert "☐" not in text
    assert message.text.startswith("❌ Rollback of api")


def test_verdict_error_and_no_checks() -> None:
    failed = thread.verdict_message(make_rollback(), [], RUNBOOK,
                                    error="Cloud Run: quota <exceeded>")
    assert "quota &lt;exceeded&gt;" in all_text(failed)
    assert "Stop and escalate" in failed.text
    unchecked = thread.verdict_message(make_rollback(), [], RUNBOOK)
    assert "verify by hand" in unchecked.text


def test_recovery_note() -> None:
    rollback = make_rollback(state=State.EXECUTING)
    note = thread.recovery_note(rollback, "resuming the traffic change")
    assert "rollbot restarted while this rollback was executing; resuming" in note.text
    whole = thread.recovery_note(rollback, "rollbot restarted while this rollback ran; x")
    assert whole.text.count("rollbot restarted") == 1


# --- history -------------------------------------------------------------------------


def test_history_empty() -> None:
    assert history_message("api", []).text == "No rollbacks of api yet."


def test_history_shows_last_ten_newest_first() -> None:
    rollbacks = [make_rollback(id=i, state=State.SUCCEEDED, confirmed_by="UB",
                               verdict="verified", created_at=T0 + dt.timedelta(hours=i))
                 for i in range(12)]
    message = history_message("api", rollbacks)
    sections = [b["text"]["text"] for b in message.blocks_json() if b["type"] == "section"]
    assert len(sections) == 10
    assert sections[0].startswith("✅ *#11*") and sections[-1].startswith("✅ *#2*")
    assert f"api → {TARGET}" in sections[0]
    assert "requested by <@UA>, confirmed by <@UB>" in sections[0]
    assert "2024-05-01 14:00 UTC" in sections[0]
    assert "last 10 of 12" in all_text(message)


# --- refusals ------------------------------------------------------------------------


def test_refusals_say_why_and_what_instead() -> None:
    assert "needs a second person" in refusals.needs_second_person().text
    approvers = all_text(refusals.not_an_approver("api", ["U0123ABCD", "S0GROUP1"]))
    assert "<@U0123ABCD>" in approvers and "<!subteam^S0GROUP1>" in approvers
    assert "`^(inc|incident)[-_]`" in refusals.not_incident_channel("^(inc|incident)[-_]").text
    active = refusals.active_rollback_exists(make_rollback(), "https://slack/p/1")
    assert "#42" in active.text and "<https://slack/p/1|" in active.text
    assert "<#C1>" in refusals.active_rollback_exists(make_rollback(), None).text
    assert "`api`" in refusals.not_a_requester("api").text
    assert "<@UR>" in refusals.not_a_requester("api", ["UR"]).text
    assert refusals.plan_error("Revision `<x>` does not exist", "try `/rollback api`").text == (
        ":warning: Revision `&lt;x&gt;` does not exist\ntry `/rollback api`")


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"state": State.CONFIRMED, "confirmed_by": "UB"}, "already confirmed by <@UB>"),
    ({"state": State.CANCELLED}, "already cancelled"),
    ({"state": State.SUCCEEDED}, "already finished"),
])
def test_already_handled(overrides: dict[str, Any], expected: str) -> None:
    assert expected in refusals.already_handled(make_rollback(**overrides)).text
