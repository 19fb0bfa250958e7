"""A staged change's chart in its thread: at each step change and at the end, a PNG
of the target's 5xx rate and p95 beside the replaced revisions' over the rollout
(`gradual-<change id>-step<N>.png`, `gradual-<change id>-final.png`).

Its own job (`rollbot.rollout_chart`), deferred with the move that calls for it: only
this job imports matplotlib (through bot.charts), and it renders in a worker thread,
so neither the listener nor a step's analysis waits for a drawing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from psycopg import AsyncConnection
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.changes.rollout import Rollout
from bot.charts import ChartPoint, render_gradual_chart
from bot.deps import Deps
from bot.jobs_names import ROLLOUT_CHART

log = logging.getLogger(__name__)


def file_name(change_id: int, name: str) -> str:
    return f"gradual-{change_id}-{name}.png"


async def defer(deps: Deps, conn: AsyncConnection[Any], change_id: int, name: str) -> None:
    """Ask for a chart with the move that calls for it (same transaction)."""
    await deps.jobs.configure_task(ROLLOUT_CHART, connection=conn).defer_async(
        change_id=change_id, name=name)


def points(rollout: Rollout) -> list[ChartPoint]:
    out = []
    for analysis in rollout.analyses:
        target, replaced = analysis.get("target") or {}, analysis.get("replaced") or {}
        out.append(ChartPoint(
            at=dt.datetime.fromisoformat(analysis["at"]),
            target_error_rate=target.get("error_rate"),
            target_p95_ms=target.get("p95_latency_ms"),
            replaced_error_rate=replaced.get("error_rate"),
            replaced_p95_ms=replaced.get("p95_latency_ms")))
    return out


async def draw(deps: Deps, change_id: int, name: str) -> None:
    """The `rollout_chart` job."""
    change = await deps.changes.get(change_id)
    if change is None or not change.rollout or not change.thread_ts:
        return
    rollout = Rollout.from_json(change.rollout)
    drawn = points(rollout)
    if not drawn:
        return  # nothing measured yet (e.g. aborted before the first analysis)
    policy = deps.catalog.services[change.service].verification
    title = f"{change.service}: {rollout.target} step by step"
    png = await asyncio.to_thread(
        render_gradual_chart, drawn, title=title,
        step_changes=[dt.datetime.fromisoformat(h["at"]) for h in rollout.history[1:]],
        max_error_rate=policy.max_error_rate, max_p95_ms=policy.max_p95_latency_ms)
    try:
        await deps.slack.upload_file(
            change.channel_id, change.thread_ts, file_name(change.id, name), png, title=title,
            comment=f"{len(drawn)} analyses: target (blue) vs replaced (grey)")
    except (SlackApiError, SlackRequestError) as exc:
        log.warning("chart %s of change %s not uploaded: %s", name, change.id, exc)
