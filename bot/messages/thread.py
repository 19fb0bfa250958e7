"""The rollback's thread: announcement, progress lines, live summary, verdict.

Every line is short and says one thing; the summary at the top of the thread is kept
current with chat.update so a late joiner reads one message.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement

from bot.catalog import RunbookSection
from bot.changes.model import Change, State, Verdict
from bot.checks import CheckKind, CheckResult, checked_the_service
from bot.ids import FollowUpAction, RollbackBlock
from bot.messages.base import Message, context, mrkdwn_section
from bot.messages.plan import (
    TEXT_MAX,
    clip,
    esc,
    people,
    traffic_mrkdwn,
    traffic_plain,
)
from bot.plans import Plan

STOP = "Stop and escalate; do not roll back further blindly."


def _message(text: str, *blocks: Block) -> Message:
    """A message whose blocks are given, or one section of `text` when none are."""
    return Message(text=clip(text, TEXT_MAX), blocks=blocks or (mrkdwn_section(clip(text)),))


def _plan(change: Change) -> Plan:
    return Plan.from_json(change.plan)


def announcement(change: Change) -> Message:
    """`Initiating rollback of api to revision … (requested by <@A>, confirmed by <@B>)`:
    the runbook's announcement, in the words of the change's plan."""
    plan = _plan(change)
    how = f" gradually: {plan.staged}" if plan.staged and change.kind != plan.kind else ""
    text = (f"Initiating {plan.action}{how} ({people(change)})" if plan.cloud_run_service
            else f"{plan.action[:1].upper()}{plan.action[1:]} ({people(change)})")
    if change.spec.get("undo_of"):
        text += f" · this undoes #{change.spec['undo_of']}"
    return _message(text)


def drift_message(change: Change, what: str) -> Message:
    """The plan was out of date at Confirm: nothing changed; offer a fresh plan."""
    text = (f"⛔ Stopped before changing anything: {what}. The plan card no longer shows "
            "what serves; look at the new state and plan again.")
    return Message(text=clip(text, TEXT_MAX), blocks=(
        mrkdwn_section(clip(f"⛔ *Stopped before changing anything* — {esc(what)}.\n"
                            "Nothing was changed. Plan again to see what serves now.")),
        ActionsBlock(block_id=RollbackBlock.FOLLOW_UPS.value, elements=[ButtonElement(
            text="Plan again", action_id=FollowUpAction.PLAN_AGAIN.value,
            value=str(change.id), style="primary")]),
    ))


def traffic_failed(
    error: str,
    traffic_now: dict[str, int] | None,
    *,
    before: dict[str, int] | None = None,
    cloud_run_service: str | None = None,
    region: str | None = None,
) -> Message:
    """The traffic change failed; say what failed and what Cloud Run serves now.

    With `before`, a read-back that differs from it is reported as a change, never as
    "unchanged".
    """
    failed = f"❌ Traffic shift failed: {esc(clip(error, 1500))}"
    failed_plain = f"Traffic shift failed: {clip(error, 1500)}"
    if traffic_now is None:
        svc = cloud_run_service or "SERVICE"
        where = f" --region={region}" if region else " --region=REGION"
        now = ("Traffic should be unchanged, but rollbot could not read traffic back — "
               f"check with `gcloud run services describe {svc}{where}`")
        now_plain = ("Could not read traffic back — check with "
                     f"gcloud run services describe {svc}{where}")
    elif before is not None and traffic_now != before:
        now = (f"⚠️ Traffic CHANGED: Cloud Run now serves {traffic_mrkdwn(traffic_now)} "
               f"(before: {traffic_mrkdwn(before)})")
        now_plain = f"Traffic CHANGED, now {traffic_plain(traffic_now)}"
    else:
        now = f"Traffic unchanged: Cloud Run serves {traffic_mrkdwn(traffic_now)}"
        now_plain = f"Traffic unchanged: {traffic_plain(traffic_now)}"
    return _message(f"{failed_plain}. {now_plain}", mrkdwn_section(clip(f"{failed}\n{now}")))


def _check_parts(result: CheckResult) -> list[str]:
    parts = []
    if result.kind == CheckKind.HTTP:  # an exit code or a Cloud Run read is in detail
        status = str(result.status) if result.status is not None else "no answer"
        if not result.detail.startswith(status):
            parts.append(status)
    if result.detail:
        parts.append(result.detail)
    parts.append(f"{result.elapsed_ms:.0f} ms")
    if result.attempts > 1:
        parts.append(f"{result.attempts} attempts")
    return parts


def _dependencies(result: CheckResult) -> str:
    return ", ".join(f"{name}: {value}" for name, value in result.dependencies.items())


def _check_texts(result: CheckResult) -> tuple[str, str]:
    """(mrkdwn, plain) of one check result."""
    icon = "✅" if result.ok else "❌"
    parts = _check_parts(result)
    line = f"{icon} *{esc(result.name)}* · " + " · ".join(esc(p) for p in parts)
    plain = f"{icon} {result.name} · " + " · ".join(parts)
    deps = _dependencies(result)
    if deps:
        line += f"\n↳ {esc(deps)}"
        plain += f" ({deps})"
    return line, plain


def check_line(result: CheckResult) -> Message:
    """`✅ health · 200 healthy · 45 ms`, plus /ready's dependency checks."""
    line, plain = _check_texts(result)
    return _message(plain, mrkdwn_section(clip(line)))


def _latest(results: list[CheckResult]) -> list[CheckResult]:
    """The last result of each check, in the order checks first appeared."""
    latest: dict[str, CheckResult] = {}
    for result in results:
        latest[result.name] = result
    return list(latest.values())


def summary(rollback: Change, *, stage: str, results: list[CheckResult],
            running: Sequence[Block] = ()) -> Message:
    """The top-of-thread summary: stage and checks so far (latest result per check);
    `running`: a rollout's progress and buttons while it runs."""
    headline = _plan(rollback).headline
    head = f"*Rollback of {esc(headline)}* · {stage}"
    blocks: list[Block] = [mrkdwn_section(clip(head))]
    checks = _latest(results)
    if checks:
        compact = " · ".join(f"{'✅' if r.ok else '❌'} {esc(r.name)}" for r in checks)
        blocks.append(mrkdwn_section(clip(f"Checks: {compact}")))
    blocks.extend(running)
    blocks.append(context(clip(f"#{rollback.id} · {people(rollback)}")))
    passed = sum(r.ok for r in checks)
    text = f"Rollback of {headline}: {stage}"
    if checks:
        text += f" ({passed}/{len(checks)} checks passing)"
    return _message(text, *blocks)


def _traffic(change: Change, key: str) -> dict[str, int] | None:
    found = ((change.after or {}) if key == "after" else change.before).get("traffic")
    return None if found is None else {str(k): int(v) for k, v in found.items()}


def _follow_ups(change: Change) -> list[Block]:
    """Restore latest routing, where the change went through and left the service pinned."""
    if not _plan(change).pins or change.state != State.SUCCEEDED:
        return []
    return [ActionsBlock(block_id=RollbackBlock.FOLLOW_UPS.value, elements=[ButtonElement(
        text="Restore latest routing", action_id=FollowUpAction.RESTORE_LATEST.value,
        value=str(change.id))]), context(
        "The service is pinned now: later deploys get no traffic until latest routing "
        "is restored.")]


def verdict_message(
    rollback: Change,
    results: list[CheckResult],
    runbook: RunbookSection,
    *,
    error: str | None = None,
) -> Message:
    """The outcome: verified (all `results` passed, no `error`) with the post-rollback
    checklist, or failed naming what failed and what to do next."""
    failed = [r for r in results if not r.ok]
    plan = _plan(rollback)
    after = _traffic(rollback, "after")
    serves = traffic_mrkdwn(after) if after else (plan.will_serve
                                                  or traffic_mrkdwn(plan.target_traffic))
    who = context(clip(f"#{rollback.id} · {people(rollback)}"))
    # A Cloud Run change says what the service serves; another (a flag) says its state.
    now = f"{rollback.service} serves {serves}" if plan.cloud_run_service else serves
    if error is None and not failed:
        if checked_the_service(results):
            head = (f"✅ *Rollback verified* — {now} · "
                    f"{len(results)}/{len(results)} checks passed")
            text = f"✅ Rollback verified: {plan.headline}"
        elif not plan.cloud_run_service:
            head = (f"⚠️ *Changed, nothing verified* — {now}, read back; no service's "
                    "checks follow this change: verify by hand")
            text = f"⚠️ {plan.headline}: done and read back; no service's checks follow it"
        else:
            head = (f"⚠️ *Changed, nothing verified* — {now}; no checks configured: "
                    "verify by hand")
            text = (f"⚠️ Rollback of {plan.headline} done; "
                    "no checks configured: verify by hand")
        blocks: list[Block] = [mrkdwn_section(clip(head))]
        if runbook.post_rollback_checklist:
            items = "\n".join(f"☐ {esc(item)}" for item in runbook.post_rollback_checklist)
            blocks.append(mrkdwn_section(clip(f"*Post-rollback checklist*\n{items}")))
        blocks += [*_follow_ups(rollback), who]
        return _message(text, *blocks)

    if error is not None:
        what = clip(error, 1000)
    else:
        what = f"{len(failed)}/{len(results)} checks failed: " + ", ".join(
            r.name for r in failed)
    aborted = rollback.verdict == Verdict.ABORTED
    head = "🛑 *Gradual rollback aborted*" if aborted else "❌ *Rollback failed*"
    blocks = [mrkdwn_section(clip(f"{head} — {esc(what)}"))]
    if failed:
        lines = "\n".join(_check_texts(r)[0] for r in failed[:20])
        blocks.append(mrkdwn_section(clip(lines)))
    if plan.cloud_run_service:
        traffic = (f"Cloud Run serves: {traffic_mrkdwn(after)}"
                   if after else "Traffic now: unknown (check with gcloud)")
        blocks.append(context(clip(
            f"{traffic} · before: {traffic_mrkdwn(_traffic(rollback, 'before'))}")))
    else:
        blocks.append(context(clip(f"Asked for: {serves} · see the read-back above")))
    next_steps = f"*Next: {STOP}*"
    if runbook.restrictions:
        stops = "\n".join(f"• {esc(item)}" for item in runbook.restrictions)
        next_steps += f"\nRolling back is unsafe when:\n{stops}"
    blocks += [mrkdwn_section(clip(next_steps)), who]
    text = (f"🛑 Gradual rollback of {plan.headline} aborted: {what}. {STOP}" if aborted
            else f"❌ Rollback of {plan.headline} failed: {what}. {STOP}")
    return _message(text, *blocks)


def caution(text: str) -> Message:
    """A line in the thread that qualifies what follows (e.g. no baseline to compare)."""
    return _message(f"⚠️ {esc(text)}")


def recovery_note(rollback: Change, what: str) -> Message:
    """After a crash: `rollbot restarted while this rollback was executing; <what>`.

    `what` may also be the whole sentence (starting "rollbot restarted"); it is not
    repeated then.
    """
    if what.lower().startswith("rollbot restarted"):
        text = f"⚠️ {what}"
    else:
        text = f"⚠️ rollbot restarted while this rollback was {rollback.state.value}; {what}"
    return _message(
        text,
        mrkdwn_section(clip(text)),
        context(clip(f"#{rollback.id} · {_plan(rollback).headline}")),
    )
