"""The before/after table posted in the thread at each measurement time, and the
verdict line judged from it."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block

from bot.changes.model import Verdict
from bot.judgement import Judgement, Measurement, Outcome, Row, inconclusive_summary
from bot.messages.base import Message, context, mrkdwn_section
from bot.messages.plan import clip, esc

ICON = {Outcome.PASS: "✅", Outcome.FAIL: "❌", Outcome.INCONCLUSIVE: "❔"}
VERDICT_ICON = {Verdict.VERIFIED: "✅", Verdict.DEGRADED: "⚠️", Verdict.FAILED: "❌"}


def _table(rows: list[Row]) -> str:
    header = f"{'metric':<15} {'before':>10} {'after':>10} {'change':>11}  result"
    lines = [header]
    for row in rows:
        lines.append(f"{row.metric:<15} {row.before:>10} {row.after:>10} {row.change:>11}  "
                     f"{ICON[row.outcome]} {row.rule}")
    return "```\n" + "\n".join(lines) + "\n```"


def table_status(rows: Sequence[Row]) -> str:
    """The title's verdict on the rows, never kinder than they are: ✅ only when every
    row passed; else the failing rows (❌) and the inconclusive ones with why (❔)."""
    if not rows:
        return "❔ inconclusive: nothing was measured"
    failed = [row.metric for row in rows if row.outcome == Outcome.FAIL]
    parts = [f"❌ {', '.join(failed)}"] if failed else []
    if any(row.outcome == Outcome.INCONCLUSIVE for row in rows):
        parts.append(f"❔ inconclusive: {inconclusive_summary(rows)}")
    return " · ".join(parts) or "✅ within thresholds"


CONSOLE = ("https://console.cloud.google.com/run/detail/{region}/{service}/revisions"
           "?project={project}")


def console_link(project: str, region: str, cloud_run_service: str) -> str:
    """The Cloud Console page of a service's revisions, each revision's metrics a click
    away: every thread line with numbers links to it."""
    return CONSOLE.format(region=region, service=cloud_run_service, project=project)


def measurement_table(service: str, measurement: Measurement, rows: list[Row],
                      link: str | None = None) -> Message:
    status = table_status(rows)
    head = f"*Metrics {esc(measurement.label)}* · {service} · {esc(status)}"
    blocks: list[Block] = [mrkdwn_section(clip(head)), mrkdwn_section(clip(_table(rows)))]
    notes = [f"source: {esc(measurement.source)}"]
    if measurement.requests is not None:
        notes.append(f"{measurement.requests:.0f} requests")
    notes.extend(esc(p) for p in measurement.problems)
    if link:
        notes.append(f"<{link}|metrics in Cloud Console>")
    if measurement.log_samples:
        samples = "\n".join(f"• `{esc(clip(s, 280))}`" for s in measurement.log_samples)
        blocks.append(mrkdwn_section(clip(f"Errors still logged (top {len(measurement.log_samples)}"
                                          f" since the change):\n{samples}")))
    blocks.append(context(clip(" · ".join(notes))))
    text = f"Metrics {measurement.label} for {service}: {status}"
    return Message(text=clip(text, 3000), blocks=tuple(blocks))


def verdict_line(subject: str, judgement: Judgement, *, notes: Sequence[str] = ()) -> Message:
    """`⚠️ api: *degraded*`, then why (e.g. metrics unknown, and why) and `notes`."""
    head = f"{VERDICT_ICON[judgement.verdict]} {subject}: *{judgement.verdict}*"
    why = "; ".join(judgement.reasons)
    blocks: list[Block] = [mrkdwn_section(clip(esc(head)))]
    if why:
        blocks.append(mrkdwn_section(clip(f"Why: {esc(why)}")))
    if notes:
        blocks.append(context(clip(" · ".join(esc(note) for note in notes))))
    text = f"{head} — {why}" if why else head
    return Message(text=clip(text, 3000), blocks=tuple(blocks))
