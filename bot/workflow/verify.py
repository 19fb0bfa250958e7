"""Step 4: verification streamed into the thread, then the verdict.

Run inline right after the change (bot/workflow/execute.py), or as the `verify` job
when recovery resumes a change. The kind's read-back is the first check; the service's
health, ready and smoke checks follow, each line as soon as its result is known; the
summary at the top of the thread is kept current; the plan card shows the final state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

from bot.catalog import ServiceSection
from bot.changes.model import Change, State, Verdict
from bot.changes.registry import kind_named
from bot.checks import CheckResult, checked_the_service
from bot.deps import Deps
from bot.messages.base import Message, mrkdwn_section
from bot.messages.plan import clip
from bot.messages.thread import check_line, verdict_message
from bot.metrics import record_rollback_outcome
from bot.plans import Plan
from bot.smoke import smoke_command_check
from bot.verification import checks_for, run_checks
from bot.workflow import analyse, held_step
from bot.workflow.posting import ChangeView, in_thread

log = logging.getLogger(__name__)


async def verify(deps: Deps, change_id: int) -> None:
    """The `verify` job: recovery's way to re-run verification."""
    change = await deps.changes.get(change_id)
    if change is None or change.state != State.VERIFYING:
        log.info("verify: change %s is %s, nothing to do", change_id,
                 change.state if change else "missing")
        return
    await resume_verification(deps, change)


async def resume_verification(deps: Deps, change: Change) -> None:
    """Verify a `verifying` change again, its first check from a fresh read."""
    first = await kind_named(change.kind).read_back(deps, change)
    async with ChangeView(deps, change) as view:
        await verify_change(deps, change, view, changed_at=dt.datetime.now(dt.UTC),
                            first=first)


class _Progress:
    """The check lines and the summary's count while checks run. Lines wait until the
    change is `verifying` (`start`); the card says so once the first line is out."""

    def __init__(self, deps: Deps, change: Change, view: ChangeView, total: int,
                 card_due: bool) -> None:
        self.deps, self.change, self.view, self.total = deps, change, view, total
        self.results: list[CheckResult] = []
        self.waiting = 0  # results that arrived before `start`
        self._started = asyncio.Event()
        self._card_due = card_due

    def card_once(self) -> None:
        if self._card_due:
            self._card_due = False
            self.view.card(self.change)

    def count(self) -> None:
        self.view.summary(self.change, f"Verifying ({len(self.results)}/{self.total} "
                                       "checks done)…", self.results)

    async def report(self, result: CheckResult) -> None:
        self.waiting += 1
        await self._started.wait()
        self.results.append(result)
        await in_thread(self.deps, self.change, check_line(result))
        self.card_once()
        self.count()

    def start(self, change: Change) -> None:
        self.change = change
        if not self.waiting:  # else the next count follows at once: one write fewer
            self.count()
        self._started.set()


async def verify_change(
    deps: Deps, change: Change, view: ChangeView, *, changed_at: dt.datetime,
    first: CheckResult | None = None,
    begun: asyncio.Future[Change | None] | None = None,
) -> None:
    """Run the checks of a `verifying` change and give the verdict.

    `first`: the kind's read-back, already known; its line is posted at once.
    `begun`: the move to `verifying` still under way. The other checks (read-only
    GETs) start at once; their lines wait for it, and if it fails (None: the change
    moved elsewhere) they are dropped and nothing is said.
    """
    services = _touched(deps, change)
    smokes = [name for name, svc in services if svc.smoke_command is not None]
    total = (sum(len(checks_for(svc)) for _, svc in services) + len(smokes)
             + (first is not None))
    progress = _Progress(deps, change, view, total, card_due=begun is not None)
    # What the outside system says is a fact whatever becomes of the row: said at once.
    first_line = (asyncio.ensure_future(in_thread(deps, change, check_line(first)))
                  if first is not None else None)
    checks = asyncio.ensure_future(_every_service(deps, services, progress))
    verifying = await _begun(change, begun, checks, first_line)
    if verifying is None:
        return
    if first is not None:
        progress.results.append(first)
        progress.card_once()  # the first line is out
    progress.start(verifying)
    results = [*([first] if first is not None else []), *await checks]
    progress.card_once()  # no checks configured: nothing to wait for
    for name in smokes:
        results.append(await _smoke(deps, verifying, progress, name, len(services) > 1))
    await _conclude(deps, verifying, view, results, changed_at)


async def _begun(change: Change, begun: asyncio.Future[Change | None] | None,
                 checks: asyncio.Future[list[CheckResult]],
                 first_line: asyncio.Future[str | None] | None) -> Change | None:
    """The `verifying` row once the move is done and the first line out; None (checks
    dropped) if the change moved elsewhere."""
    try:
        verifying = change if begun is None else await begun
        if first_line is not None:
            await first_line
    except BaseException:
        checks.cancel()
        await asyncio.gather(checks, *(first_line,) if first_line else (),
                             return_exceptions=True)
        raise
    if verifying is None:
        checks.cancel()
        await asyncio.gather(checks, return_exceptions=True)
    return verifying


def _touched(deps: Deps, change: Change) -> list[tuple[str, ServiceSection]]:
    """Every service the change touches (a secret pinned in each), as the catalog has
    them now; one checks the change's own."""
    names = Plan.from_json(change.plan).checked if change.plan else (change.service,)
    return [(name, deps.catalog.services[name]) for name in names
            if name in deps.catalog.services]


async def _every_service(deps: Deps, services: list[tuple[str, ServiceSection]],
                         progress: _Progress) -> list[CheckResult]:
    """Each service's checks, at once; named after their service when there are several."""
    async def one(name: str, svc: ServiceSection) -> list[CheckResult]:
        async def report(result: CheckResult) -> None:
            await progress.report(_named(result, name, len(services) > 1))
        found = await run_checks(checks_for(svc), svc.verification, deps.http,
                                 on_result=report)
        return [_named(r, name, len(services) > 1) for r in found]
    per_service = await asyncio.gather(*(one(name, svc) for name, svc in services))
    return [result for results in per_service for result in results]


def _named(result: CheckResult, service: str, several: bool) -> CheckResult:
    return dataclasses.replace(result, name=f"{service}: {result.name}") if several else result


async def _smoke(deps: Deps, change: Change, progress: _Progress, service: str,
                 several: bool) -> CheckResult:
    command = deps.catalog.services[service].smoke_command
    assert command is not None
    check, last_lines = await smoke_command_check(command)
    check = _named(check, service, several)
    await progress.report(check)
    if last_lines:
        tail = "\n".join(last_lines)
        await in_thread(deps, change, Message(
            text=f"Last lines of the smoke command:\n{tail}",
            blocks=(mrkdwn_section(clip("```\n" + tail + "\n```")),)))
    return check


async def _conclude(deps: Deps, change: Change, view: ChangeView,
                    results: list[CheckResult], changed_at: dt.datetime) -> None:
    failed = [r for r in results if not r.ok]
    unchecked = not checked_the_service(results)
    if failed:
        outcome, state = Verdict.FAILED, State.FAILED
        error = "verification failed: " + ", ".join(f"{r.name} ({r.detail})" for r in failed)
    elif unchecked:
        outcome, state, error = Verdict.DEGRADED, State.SUCCEEDED, None
    else:
        outcome, state, error = Verdict.VERIFIED, State.SUCCEEDED, None
    done = await deps.changes.transition(
        change.id, State.VERIFYING, state, verdict=outcome.value, error=error)
    if done is None:
        return  # finished elsewhere (a resumed duplicate)
    record_rollback_outcome(done.state.value)
    await analyse.schedule(deps, done, changed_at)
    await deps.audit.record(
        actor="rollbot", action="verified", service=change.service, change_id=change.id,
        outcome="ok" if state == State.SUCCEEDED else "error",
        details={"verdict": outcome.value,
                 "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail}
                            for r in results]})
    note = "No health checks are configured for this service." if unchecked else None
    await in_thread(deps, done, verdict_message(done, results, deps.catalog.runbook,
                                                error=error))
    await held_step.offer(deps, done)
    view.summary(done, held_step.stage(done), results)
    view.card(done, final_note=note)
