"""Keeping Slack in step with a rollback: the plan card, the thread, the summary.

Slack is the view, Postgres the truth: a Slack failure here is logged and the
workflow goes on (slack_sdk's retry handlers already retried 429/5xx).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block

from bot.changes.model import Change, State
from bot.changes.registry import kind_named
from bot.changes.rollout import Rollout
from bot.checks import CheckResult
from bot.deps import Deps
from bot.messages import rollout as rollout_words
from bot.messages.base import Message
from bot.messages.plan import plan_card
from bot.messages.thread import summary
from bot.plans import Plan

log = logging.getLogger(__name__)


def _undoable(change: Change) -> bool:
    """Over, and its kind can reverse it (None: nothing to reverse, e.g. unchanged)."""
    if change.state not in (State.SUCCEEDED, State.FAILED):
        return False
    return kind_named(change.kind).undo(change) is not None


def _running(change: Change) -> list[Block]:
    """A rollout's progress and buttons, while it runs."""
    if change.state != State.ROLLING_OUT or not change.rollout:
        return []
    return rollout_words.progress_blocks(change, Rollout.from_json(change.rollout),
                                         dt.datetime.now(dt.UTC))


async def refresh_card(deps: Deps, rollback: Change, final_note: str | None = None) -> None:
    # Re-read: jobs run concurrently, and a card rendered from a stale row would
    # show an older state after a newer one.
    rollback = await deps.changes.get(rollback.id) or rollback
    if not rollback.card_ts:
        return
    card = plan_card(Plan.from_json(rollback.plan), rollback, final_note=final_note,
                     undoable=_undoable(rollback), running=_running(rollback))
    try:
        await deps.slack.update(rollback.channel_id, rollback.card_ts, card)
    except SlackApiError as exc:
        log.warning("could not update plan card of rollback %s: %s",
                    rollback.id, exc.response.get("error"))


async def in_thread(deps: Deps, rollback: Change, message: Message) -> str | None:
    """Post a line in the rollback's thread (top level if it has no thread yet)."""
    try:
        return await deps.slack.post(rollback.channel_id, message, thread_ts=rollback.thread_ts)
    except SlackApiError as exc:
        log.warning("could not post in thread of rollback %s: %s",
                    rollback.id, exc.response.get("error"))
        return None


class _Turns:
    """One Slack message's writes, run one at a time in the order they were asked for."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # FIFO
        self.asked = 0


class ChangeView:
    """The plan card and the thread's summary of one rollback while a job moves it on.

    Both are refreshed in background tasks, so the workflow never waits on Slack to
    show progress; use it as `async with`, which awaits them before the job ends
    (and cancels them if the job is cancelled). A message's writes go out in the
    order they were asked for, and one still waiting when a newer one is asked for
    is skipped: a late "0/N checks" can never overwrite "2/N" or the verdict.
    """

    def __init__(self, deps: Deps, rollback: Change) -> None:
        self._deps = deps
        self._summary_ts = rollback.summary_ts
        self._card, self._summary = _Turns(), _Turns()
        self._tasks: set[asyncio.Task[None]] = set()

    def card(self, rollback: Change, final_note: str | None = None) -> None:
        self._spawn(self._card, lambda: refresh_card(self._deps, rollback, final_note),
                    "plan card", rollback.id)

    def summary(self, rollback: Change, stage: str,
                results: list[CheckResult] | None = None) -> None:
        # Rendered now: `results` may grow before the write goes out.
        message = summary(rollback, stage=stage, results=list(results or []),
                          running=_running(rollback))

        async def write() -> None:
            if self._summary_ts:
                await self._deps.slack.update(rollback.channel_id, self._summary_ts, message)
                return
            self._summary_ts = await self._deps.slack.post(
                rollback.channel_id, message, thread_ts=rollback.thread_ts)
            await self._deps.changes.set_fields(rollback.id, summary_ts=self._summary_ts)

        self._spawn(self._summary, write, "summary", rollback.id)

    def _spawn(self, turns: _Turns, write: Callable[[], Awaitable[None]], what: str,
               change_id: int) -> None:
        turns.asked += 1
        mine = turns.asked  # taken now, not when the task first runs

        async def run() -> None:
            async with turns.lock:
                if mine != turns.asked:
                    return  # superseded: the newer content goes out in its own turn
                try:
                    await write()
                except SlackApiError as exc:
                    log.warning("could not update %s of rollback %s: %s",
                                what, change_id, exc.response.get("error"))
                except Exception:
                    log.exception("could not update %s of rollback %s", what, change_id)

        task = asyncio.create_task(run(), name=f"rollback-{change_id}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for every refresh asked for so far (and any they lead to)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def __aenter__(self) -> ChangeView:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and not isinstance(exc, Exception):  # cancelled: stop now
            for task in self._tasks:
                task.cancel()
            return
        await self.settle()
