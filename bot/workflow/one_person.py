"""A one-person change (a kill switch pulled on: the emergency brake): no card to
click. Its requester's own confirmation is audited as such (`one_person`), then the
change runs and is verified as after any Confirm."""

from __future__ import annotations

from bot.changes.model import Change, State
from bot.deps import Deps
from bot.workflow import execute
from bot.workflow.posting import ChangeView


async def confirm_own(deps: Deps, change: Change) -> None:
    """A one-person change (a kill switch pulled on: the emergency brake): its
    requester's own confirmation, audited as such, then the change and its
    verification, as after any Confirm."""
    async def confirm() -> Change | None:
        async with deps.pool.connection() as conn, conn.transaction():
            confirmed = await deps.changes.transition(
                change.id, State.PROPOSED, State.CONFIRMED, conn=conn,
                confirmed_by=change.requested_by, kind=change.kind)
            if confirmed is not None:
                await deps.audit.record(
                    conn=conn, actor=change.requested_by, action="confirm",
                    service=change.service, change_id=change.id,
                    details={"kind": change.kind, "one_person": True})
        return confirmed

    async with ChangeView(deps, change) as view:
        await execute.run_change(deps, change, view, confirm=confirm)
