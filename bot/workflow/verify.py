"""Step 4: verification streamed into the thread, then the verdict.

Run inline right after the traffic change (bot/workflow/execute.py), or as the
`verify` job when recovery resumes a rollback. Each check's line appears as soon
as its result is known; the summary at the top of the thread is kept current; the
plan card shows the final state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from bot.deps import Deps
from bot.messages.base import Message, mrkdwn_section
from bot.messages.plan import clip
from bot.messages.thread import check_line, verdict_message
from bot.metrics import record_rollback_outcome
from bot.rollbacks.model import Rollback, State, Verdict
from bot.smoke import smoke_command_check
from bot.verification import checked_the_service, checks_for, run_checks, serving_check
from bot.workflow import analyse
from bot.workflow.posting import RollbackView, in_thread
from integrations.cloud_run import CloudRunError
from integrations.http_checks import CheckResult

log = logging.getLogger(__name__)


async def verify(deps: Deps, rollback_id: int) -> None:
    """The `verify` job: recovery's way to re-run verification."""
    rollback = await deps.rollbacks.get(rollback_id)
    if rollback is None or rollback.state != State.VERIFYING:
        log.info("verify: rollback %s is %s, nothing to do", rollback_id,
                 rollback.state if rollback else "missing")
        return
    async with RollbackView(deps, rollback) as view:
        await verify_rollback(deps, rollback, view, changed_at=dt.datetime.now(dt.UTC),
                              serving=await read_serving(deps, rollback))


async def read_serving(deps: Deps, rollback: Rollback) -> CheckResult:
    """The serving check from a fresh read of the service (a resumed verification)."""
    began = time.monotonic()
    serving, error = None, None
    try:
        state = await deps.cloud_run.get_service(
            rollback.cloud_run_service, deps.catalog.region_of(rollback.service))
        serving = state.serving()
    except CloudRunError as exc:
        error = exc.message
    return serving_check({rollback.target_revision: 100}, serving, rollback.traffic_before,
                         elapsed_ms=(time.monotonic() - began) * 1000, error=error)


async def verify_rollback(
    deps: Deps, rollback: Rollback, view: RollbackView, *, changed_at: dt.datetime,
    serving: CheckResult | None = None,
    begun: asyncio.Future[Rollback | None] | None = None,
) -> None:
    """Run the checks of a `verifying` rollback and give the verdict. The card and
    summary refreshes run beside the checks (`view`), never ahead of them.

    `serving`: the serving check, already known (Cloud Run's read-back); its line is
    the first, posted at once. `begun`: the move to `verifying` still under way. The
    other checks (read-only GETs) start at once; their lines wait for it, and if it
    fails (None: the rollback moved elsewhere) they are dropped and nothing is said.
    """
    service = deps.catalog.services[rollback.service]
    specs = checks_for(service)
    total = (len(specs) + (1 if service.smoke_command is not None else 0)
             + (1 if serving is not None else 0))
    results: list[CheckResult] = []
    # What Cloud Run serves is a fact whatever becomes of the row: said at once.
    serving_line = (asyncio.ensure_future(in_thread(deps, rollback, check_line(serving)))
                    if serving is not None else None)
    reporting = asyncio.Event()  # set once the rollback is `verifying` and 0/N asked for
    waiting: list[CheckResult] = []
    # The card says `verifying` once the first check line is out: rendering and
    # updating it first would only delay the line people are waiting for.
    card_due = begun is not None

    def refresh_card_once() -> None:
        nonlocal card_due
        if card_due:
            card_due = False
            view.card(rollback)

    async def on_result(result: CheckResult) -> None:
        waiting.append(result)
        await reporting.wait()
        results.append(result)
        await in_thread(deps, rollback, check_line(result))
        refresh_card_once()
        view.summary(rollback, f"Verifying ({len(results)}/{total} checks done)…", results)

    checks = asyncio.ensure_future(
        run_checks(specs, service.verification, deps.http, on_result=on_result))
    try:
        verifying = rollback if begun is None else await begun
        if serving_line is not None and serving is not None:
            await serving_line
            results.append(serving)
            refresh_card_once()  # the serving line is the first
    except BaseException:
        checks.cancel()
        await asyncio.gather(checks, *(serving_line,) if serving_line else (),
                             return_exceptions=True)
        raise
    if verifying is None:
        checks.cancel()
        await asyncio.gather(checks, return_exceptions=True)
        return
    rollback = verifying
    if not waiting:  # else the next count follows at once: one summary write fewer
        view.summary(rollback, f"Verifying ({len(results)}/{total} checks done)…", results)
    reporting.set()
    final_results = [*([serving] if serving is not None else []), *await checks]
    refresh_card_once()  # no checks configured: nothing to wait for
    if service.smoke_command is not None:
        check, last_lines = await smoke_command_check(service.smoke_command)
        final_results = [*final_results, check]
        await on_result(check)
        if last_lines:
            tail = "\n".join(last_lines)
            await in_thread(deps, rollback, Message(
                text=f"Last lines of the smoke command:\n{tail}",
                blocks=(mrkdwn_section(clip("```\n" + tail + "\n```")),)))
    failed = [r for r in final_results if not r.ok]
    unchecked = not checked_the_service(final_results)
    if failed:
        outcome, state = Verdict.FAILED, State.FAILED
        error = "verification failed: " + ", ".join(f"{r.name} ({r.detail})" for r in failed)
    elif unchecked:
        outcome, state, error = Verdict.DEGRADED, State.SUCCEEDED, None
    else:
        outcome, state, error = Verdict.VERIFIED, State.SUCCEEDED, None
    done = await deps.rollbacks.transition(
        rollback.id, State.VERIFYING, state, verdict=outcome.value, error=error)
    if done is None:
        return  # finished elsewhere (a resumed duplicate)
    record_rollback_outcome(done.state.value)
    await analyse.schedule(deps, done, changed_at)
    await deps.audit.record(
        actor="rollbot", action="verified", service=rollback.service, rollback_id=rollback.id,
        outcome="ok" if state == State.SUCCEEDED else "error",
        details={"verdict": outcome.value,
                 "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail}
                            for r in final_results]})
    note = "No health checks are configured for this service." if unchecked else None
    await in_thread(deps, done, verdict_message(
        done, final_results, deps.catalog.runbook, error=error))
    view.summary(done, "Done", final_results)
    view.card(done, final_note=note)
