"""Block Kit action and block ids, one enum per domain (no magic strings)."""

from __future__ import annotations

from enum import StrEnum


class RevisionListAction(StrEnum):
    ROLL_BACK_TO = "revisions.roll_back_to"


class RollbackAction(StrEnum):
    CONFIRM = "rollback.confirm"
    GRADUAL = "rollback.gradual"
    CANCEL = "rollback.cancel"


class RollbackBlock(StrEnum):
    PLAN_HEADER = "rollback.plan.header"
    PLAN_ACTIONS = "rollback.plan.actions"  # + ":<service>", see plan_actions_block_id


def plan_actions_block_id(service: str) -> str:
    """The plan card's buttons block names its service (a catalog key), so a Confirm's
    job can start reading Cloud Run before it has loaded the rollback. Only a hint:
    the rollback's own row decides, and a read of another service is dropped."""
    return f"{RollbackBlock.PLAN_ACTIONS}:{service}"


def service_of_plan_actions(block_id: str) -> str | None:
    """The service a plan card's buttons block names; None for any other block id
    (cards posted before the id named it included)."""
    prefix = f"{RollbackBlock.PLAN_ACTIONS}:"
    if not block_id.startswith(prefix):
        return None
    return block_id.removeprefix(prefix) or None

