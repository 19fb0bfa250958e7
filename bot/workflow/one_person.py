"""A one-person change (a kill switch pulled on: the emergency brake): no card to
click. Its requester's own confirmation is audited as such (`one_person`) and, in the
same transaction, its `execute` job is queued: the job that carries the change through
the gate (announcement, audit), the change and its verification, as after any Confirm
(and recovery knows it as the change's carrier)."""

from __future__ import annotations

from bot.changes.model import Change, State
from bot.deps import Deps
from bot.jobs_names import EXECUTE


async def confirm_own(deps: Deps, change: Change) -> None:
    async with deps.pool.connection() as conn, conn.transaction():
        confirmed = await deps.changes.transition(
            change.id, State.PROPOSED, State.CONFIRMED, conn=conn,
            confirmed_by=change.requested_by, kind=change.kind)
        if confirmed is None:
            return  # moved elsewhere (cancelled, expired): nothing to carry
        await deps.audit.record(
            conn=conn, actor=change.requested_by, action="confirm", service=change.service,
            change_id=change.id, details={"kind": change.kind, "one_person": True})
        await deps.jobs.configure_task(EXECUTE, connection=conn).defer_async(
            change_id=change.id)
