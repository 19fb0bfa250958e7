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
    PLAN_ACTIONS = "rollback.plan.actions"

