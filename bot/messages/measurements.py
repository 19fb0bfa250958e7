"""The before/after table posted in the thread at each measurement time."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.judgement import Measurement, Row
from bot.messages.base import Message, context, mrkdwn_section
from bot.messages.plan import clip, esc

ICON = {"pass": "✅", "fail": "❌", "unknown": "❔"}


def _table(rows: list[Row]) -> str:
    header = f"{'metric':<15} {'before':>10} {'after':>10} {'change':>11}  result"
    lines = [header]
    for row in rows:
        lines.append(f"{row.metric:<15} {row.before:>10} {row.after:>10} {row.change:>11}  "
                     f"{ICON[row.outcome]} {row.rule}")
    return "```\n" + "\n".join(lines) + "\n```"


def measurement_table(service: str, measurement: Measurement, rows: list[Row]) -> Message:
    failed = [r.metric for r in rows if r.outcome == "fail"]
    status = "❌ " + ", ".join(failed) if failed else (
        "❔ no data" if all(r.outcome == "unknown" for r in rows) else "✅ within thresholds")
    head = f"*Metrics {esc(measurement.label)}* · {service} · {status}"
    blocks: list[Block] = [mrkdwn_section(clip(head)), mrkdwn_section(clip(_table(rows)))]
    notes = [f"source: {esc(measurement.source)}"]
    if measurement.requests is not None:
        notes.append(f"{measurement.requests:.0f} requests")
    notes.extend(esc(p) for p in measurement.problems)
    if measurement.log_samples:
        samples = "\n".join(f"• `{esc(clip(s, 280))}`" for s in measurement.log_samples)
        blocks.append(mrkdwn_section(clip(f"Errors still logged (top {len(measurement.log_samples)}"
                                          f" since the change):\n{samples}")))
    blocks.append(context(clip(" · ".join(notes))))
    text = f"Metrics {measurement.label} for {service}: {status}"
    return Message(text=clip(text, 3000), blocks=tuple(blocks))
