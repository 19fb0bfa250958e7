"""ChangeView: background card/summary refreshes, in the order asked for, the
newest winning, never fatal (bot/workflow/posting.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackApiError

from bot.changes.model import Change, State
from bot.deps import Deps
from bot.messages.base import Message
from bot.workflow.posting import ChangeView
from tests.unit.test_messages import make_rollback, result


class FakeSlack:
    """Slow Slack: records what reached each message, in order."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.sent: list[tuple[str, str, str]] = []  # (method, ts, text)
        self.fail_next = 0

    async def _call(self, method: str, ts: str, message: Message) -> None:
        await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise SlackApiError("boom", cast(Any, {"ok": False, "error": "internal_error"}))
        self.sent.append((method, ts, message.text))

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> str:
        await self._call("post", "", message)
        return "9.9"

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._call("update", ts, message)


class FakeRollbacks:
    def __init__(self, rollback: Change) -> None:
        self.rollback = rollback
        self.set_fields_calls: list[dict[str, Any]] = []

    async def set_fields(self, change_id: int, **fields: Any) -> Change:
        self.set_fields_calls.append(fields)
        self.rollback = dataclasses.replace(self.rollback, **fields)
        return self.rollback

    async def get(self, change_id: int) -> Change:
        return self.rollback


def _deps(slack: FakeSlack, rollback: Change) -> Deps:
    return cast(Deps, type("FakeDeps", (), {"slack": slack,
                                            "changes": FakeRollbacks(rollback)})())


def _stage(text: str) -> str:
    return text.split(": ", 1)[1]


async def test_summary_posts_once_then_updates_and_the_last_asked_wins() -> None:
    rollback = make_rollback(state=State.VERIFYING, thread_ts="1.0")
    slack = FakeSlack()
    deps = _deps(slack, rollback)
    async with ChangeView(deps, rollback) as view:
        view.summary(rollback, "Verifying (0/3 checks done)…")
        await asyncio.sleep(0.005)  # the post is in flight
        view.summary(rollback, "Verifying (1/3 checks done)…", [result("health")])
        view.summary(rollback, "Verifying (2/3 checks done)…", [result("health"),
                                                                 result("ready")])
        view.summary(rollback, "Done", [result("health"), result("ready"), result("db")])
    assert [m for m, _, _ in slack.sent] == ["post", "update"]  # 1/3 and 2/3 superseded
    assert _stage(slack.sent[0][2]) == "Verifying (0/3 checks done)…"
    assert _stage(slack.sent[-1][2]).startswith("Done")
    assert slack.sent[-1][1] == "9.9"  # updated the message it posted
    assert cast(FakeRollbacks, deps.changes).set_fields_calls == [{"summary_ts": "9.9"}]


async def test_order_is_taken_when_asked_not_when_the_task_runs() -> None:
    """A refresh asked for first but whose task has not run yet can never
    overwrite one asked for after it (the late "0/N" problem)."""
    rollback = make_rollback(state=State.VERIFYING, thread_ts="1.0", summary_ts="5.5")
    slack = FakeSlack(delay=0.0)
    async with ChangeView(_deps(slack, rollback), rollback) as view:
        view.summary(rollback, "Verifying (0/2 checks done)…")
        view.summary(rollback, "Verifying (1/2 checks done)…", [result("health")])
    assert [_stage(text) for _, _, text in slack.sent] == [
        "Verifying (1/2 checks done)… (1/1 checks passing)"]


async def test_results_are_rendered_when_asked() -> None:
    rollback = make_rollback(state=State.VERIFYING, thread_ts="1.0", summary_ts="5.5")
    slack = FakeSlack()
    results = [result("health")]
    async with ChangeView(_deps(slack, rollback), rollback) as view:
        view.summary(rollback, "Verifying (1/2 checks done)…", results)
        results.append(result("ready", ok=False))  # the caller's list grows meanwhile
    assert slack.sent[-1][2].endswith("(1/1 checks passing)")


async def test_a_slack_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    rollback = make_rollback(state=State.VERIFYING, thread_ts="1.0", summary_ts="5.5")
    slack = FakeSlack()
    slack.fail_next = 1
    with caplog.at_level(logging.WARNING):
        async with ChangeView(_deps(slack, rollback), rollback) as view:
            view.summary(rollback, "Shifting traffic…")
            await asyncio.sleep(0.05)
            view.summary(rollback, "Done")
    assert [_stage(text) for _, _, text in slack.sent] == ["Done"]
    assert "could not update summary of rollback 42: internal_error" in caplog.text


async def test_an_error_in_the_job_still_waits_for_the_refreshes() -> None:
    rollback = make_rollback(state=State.VERIFYING, thread_ts="1.0", summary_ts="5.5")
    slack = FakeSlack()
    with pytest.raises(RuntimeError):
        async with ChangeView(_deps(slack, rollback), rollback) as view:
            view.summary(rollback, "Failed")
            raise RuntimeError("database down")
    assert [_stage(text) for _, _, text in slack.sent] == ["Failed"]


async def test_a_cancelled_job_cancels_its_refreshes() -> None:
    rollback = make_rollback(state=State.VERIFYING, thread_ts="1.0", summary_ts="5.5")
    slack = FakeSlack(delay=10)

    async def job() -> None:
        async with ChangeView(_deps(slack, rollback), rollback) as view:
            view.summary(rollback, "Verifying…")
            await asyncio.sleep(10)

    task = asyncio.create_task(job())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert slack.sent == []


async def test_card_refreshes_are_ordered_too() -> None:
    rollback = make_rollback(state=State.EXECUTING, thread_ts="1.0")
    slack = FakeSlack()
    deps = _deps(slack, rollback)
    async with ChangeView(deps, rollback) as view:
        view.card(rollback)
        await asyncio.sleep(0.005)
        view.card(rollback)  # superseded by the final one below before it runs
        cast(FakeRollbacks, deps.changes).rollback = dataclasses.replace(
            rollback, state=State.SUCCEEDED, verdict="verified")
        view.card(rollback, final_note="All good.")
    assert [(m, ts) for m, ts, _ in slack.sent] == [("update", "1.1"), ("update", "1.1")]
    assert "verified" in slack.sent[-1][2].lower() or "succeeded" in slack.sent[-1][2].lower()
