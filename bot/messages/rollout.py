"""A gradual rollout's words: its progress, each step and analysis in the thread, its
buttons (Promote now, Abort, Pause / Resume) and its announcements in the channel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ConfirmObject

from bot.changes.model import Change
from bot.changes.rollout import Rollout, duration
from bot.ids import RollbackBlock, RolloutAction
from bot.judgement import Measurement, Outcome
from bot.messages.base import Message, context, mrkdwn_section, user_mention
from bot.messages.plan import clip, esc, traffic_mrkdwn

BAR_CELLS = 10
OUTCOME_ICONS = {Outcome.PASS: "✅", Outcome.FAIL: "❌", Outcome.INCONCLUSIVE: "❔"}


def _message(text: str, *blocks: Block) -> Message:
    return Message(text=clip(text), blocks=tuple(blocks) or (mrkdwn_section(clip(text)),))


def progress(rollout: Rollout, now: dt.datetime) -> str:
    """"Step 1/2 · 50% · 3m 20s left ▰▰▰▱▱▱▱▱▱▱" (the bar: the step's time gone)."""
    steps = len(rollout.policy.steps)
    head = f"Step {rollout.step + 1}/{steps} · {rollout.percent}%"
    if rollout.last_step:
        return f"{head} · completing"
    left = rollout.time_left(now)
    hold = rollout.policy.step_seconds
    done = 0 if hold <= 0 else round(BAR_CELLS * min(1.0, max(0.0, 1 - left / hold)))
    bar = "▰" * done + "▱" * (BAR_CELLS - done)
    state = f"⏸ paused ({rollout.paused})" if rollout.paused else f"{duration(left)} left"
    return f"{head} · {state} {bar}"


def controls(change: Change, rollout: Rollout) -> ActionsBlock:
    """Promote now · Abort · Pause (or Resume while it holds)."""
    value = str(change.id)
    hold = (ButtonElement(text="Resume", action_id=RolloutAction.RESUME.value, value=value,
                          style="primary") if rollout.paused else
            ButtonElement(text="Pause", action_id=RolloutAction.PAUSE.value, value=value))
    return ActionsBlock(block_id=RollbackBlock.ROLLOUT_CONTROLS.value, elements=[
        ButtonElement(text="Promote now", action_id=RolloutAction.PROMOTE.value, value=value,
                      confirm=ConfirmObject(
                          title="Promote now", confirm="Promote", deny="Not yet",
                          text=f"Send 100% of traffic to {rollout.target} now?")),
        hold,
        ButtonElement(text="Abort", action_id=RolloutAction.ABORT.value, value=value,
                      style="danger", confirm=ConfirmObject(
                          title="Abort the rollout", confirm="Abort", deny="Keep going",
                          text="Restore exactly the split from before the rollout?")),
    ])


def step_line(rollout: Rollout, traffic: Mapping[str, int], now: dt.datetime) -> Message:
    steps = len(rollout.policy.steps)
    head = (f"*Step {rollout.step + 1}/{steps}: {rollout.percent}% to `{rollout.target}`* · "
            f"serving {traffic_mrkdwn(traffic)}")
    if rollout.last_step:
        return _message(f"{head} · verifying now")
    nxt = rollout.next_due or rollout.next_check(now)
    text = (f"{head} · held {duration(rollout.policy.step_seconds)}, first analysis in "
            f"{duration((nxt - now).total_seconds())}")
    return _message(text)


def _numbers(m: Measurement) -> str:
    rate = "—" if m.error_rate is None else f"{m.error_rate * 100:.2f}%"
    p95 = "—" if m.p95_latency_ms is None else f"{m.p95_latency_ms:.0f} ms"
    requests = "—" if m.requests is None else f"{m.requests:.0f}"
    return f"5xx {rate}, p95 {p95}, {requests} req"


def analysis_line(record: Mapping[str, Any], rollout: Rollout, max_error_rate: float,
                  max_p95_ms: float) -> Message:
    """One analysis: the target beside what it replaces, thresholds, the outcome."""
    outcome = Outcome(record["outcome"])
    target = Measurement.from_json(record["target"])
    replaced = Measurement.from_json(record["replaced"])
    checks = " ".join(f"{'✅' if c['ok'] else '❌'} {esc(c['name'])}"
                      for c in record.get("checks", ()))
    link = f" · <{record['link']}|metrics in Cloud Console>" if record.get("link") else ""
    head = (f"{OUTCOME_ICONS[outcome]} *Analysis {record['number']}* "
            f"(step {record['step'] + 1}/{len(rollout.policy.steps)}, "
            f"{record['percent']}%): {outcome.value}")
    lines = [
        head,
        f"target `{esc(rollout.target)}`: {_numbers(target)} "
        f"(limits: 5xx ≤ {max_error_rate * 100:.2f}%, p95 ≤ {max_p95_ms:.0f} ms)",
        f"replaced: {_numbers(replaced)}",
    ]
    if checks:
        lines.append(f"target's URL: {checks}")
    if not record.get("apart", True):
        lines.append("⚠️ metrics come from the service's `metrics_url`, which cannot tell "
                     "revisions apart: both lines are the whole service.")
    if record.get("reasons"):
        lines.append("why: " + "; ".join(esc(r) for r in record["reasons"]))
    text = "\n".join(lines) + link
    return _message(text)


def held(rollout: Rollout, reason: str, now: dt.datetime) -> Message:
    """Paused (a click, inconclusive metrics, a restart): why, and what to press."""
    text = (f"⏸ *Holding at {rollout.percent}%*: {esc(reason)}. "
            f"The step has {duration(rollout.time_left(now))} left. "
            "Resume, Abort or Promote now (buttons at the top of this thread and on the card).")
    return _message(text)


def resumed(rollout: Rollout, by: str | None, now: dt.datetime) -> Message:
    who = f" by {user_mention(by)}" if by else ""
    return _message(f"▶️ Resumed{who} at {rollout.percent}%: "
                    f"{duration(rollout.time_left(now))} left in this step.")


def went_on(late_seconds: float) -> Message:
    return _message(f"rollbot resumed the rollout: this analysis ran "
                    f"{duration(late_seconds)} late (a restart or a busy worker).")


def announcement(service: str, verb: str, by: str | None, detail: str) -> Message:
    """Top level in the channel: "Gradual rollback of api aborted by @alice: …"."""
    who = f" by {user_mention(by)}" if by else " by rollbot"
    return _message(f"Gradual rollback of *{esc(service)}* {verb}{who}: {esc(detail)}")


def aborted_line(reason: str, traffic: Mapping[str, int] | None) -> Message:
    serving = traffic_mrkdwn(traffic) if traffic is not None else "unknown (read failed)"
    return _message(f"🛑 *Aborted*: {esc(reason)}. The split from before is restored: "
                    f"serving {serving}; the tag is removed.")


def progress_blocks(change: Change, rollout: Rollout, now: dt.datetime) -> list[Block]:
    """What the card and the summary show while it runs: progress and the buttons."""
    return [mrkdwn_section(clip(f"*Gradual rollout* · {progress(rollout, now)}")),
            context(f"Failed analyses: {rollout.failures}/{rollout.policy.failure_limit}"),
            controls(change, rollout)]
