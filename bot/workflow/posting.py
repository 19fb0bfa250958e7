"""Keeping Slack in step with a rollback: the plan card, the thread, the summary.

Slack is the view, Postgres the truth: a Slack failure here is logged and the
workflow goes on (slack_sdk's retry handlers already retried 429/5xx).
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.messages.base import Message
from bot.messages.plan import plan_card
from bot.messages.thread import summary
from bot.plans import Plan
from bot.rollbacks.model import Rollback
from integrations.http_checks import CheckResult

log = logging.getLogger(__name__)


async def refresh_card(deps: Deps, rollback: Rollback, final_note: str | None = None) -> None:
    # Re-read: jobs run concurrently, and a card rendered from a stale row would
    # show an older state after a newer one.
    rollback = await deps.rollbacks.get(rollback.id) or rollback
    if not rollback.card_ts:
        return
    card = plan_card(Plan.from_json(rollback.plan), rollback, final_note=final_note)
    try:
        await deps.slack.update(rollback.channel_id, rollback.card_ts, card)
    except SlackApiError as exc:
        log.warning("could not update plan card of rollback %s: %s",
                    rollback.id, exc.response.get("error"))


async def in_thread(deps: Deps, rollback: Rollback, message: Message) -> str | None:
    """Post a line in the rollback's thread (top level if it has no thread yet)."""
    try:
        return await deps.slack.post(rollback.channel_id, message, thread_ts=rollback.thread_ts)
    except SlackApiError as exc:
        log.warning("could not post in thread of rollback %s: %s",
                    rollback.id, exc.response.get("error"))
        return None


async def update_summary(deps: Deps, rollback: Rollback, stage: str,
                         results: list[CheckResult] | None = None) -> Rollback:
    """Keep the one summary message at the top of the thread current."""
    message = summary(rollback, stage=stage, results=results or [])
    try:
        if rollback.summary_ts:
            await deps.slack.update(rollback.channel_id, rollback.summary_ts, message)
            return rollback
        ts = await deps.slack.post(rollback.channel_id, message, thread_ts=rollback.thread_ts)
    except SlackApiError as exc:
        log.warning("could not update summary of rollback %s: %s",
                    rollback.id, exc.response.get("error"))
        return rollback
    updated = await deps.rollbacks.set_fields(rollback.id, summary_ts=ts)
    return updated or rollback
