"""Block Kit action and block ids, one enum per domain (no magic strings)."""

from __future__ import annotations

from enum import StrEnum


class KindName(StrEnum):
    """Change kinds (bot/changes/kinds/): stored in `changes.kind`, never renamed."""

    TRAFFIC = "traffic"
    IMAGE = "image"
    ENV = "env"
    GRADUAL = "gradual"
    SECRET = "secret"
    FLAG = "flag"
    KILL_SWITCH = "killswitch"


class RevisionListAction(StrEnum):
    ROLL_BACK_TO = "revisions.roll_back_to"


class RollbackAction(StrEnum):
    CONFIRM = "rollback.confirm"
    CANCEL = "rollback.cancel"
    GRADUAL = "rollback.gradual"  # confirm, as a gradual rollout
    OVERRIDE = "rollback.override"  # an approver overrides a blocked plan (a modal)
    FINAL_STEP = "rollback.final_step"  # a step held for a second confirmation


class RolloutAction(StrEnum):
    """A running gradual rollout's buttons (in its thread and on its card)."""

    PROMOTE = "rollout.promote"
    ABORT = "rollout.abort"
    PAUSE = "rollout.pause"
    RESUME = "rollout.resume"


class FollowUpAction(StrEnum):
    """Buttons on a finished change that propose another change (a new plan card)."""

    UNDO = "change.undo"
    RESTORE_LATEST = "change.restore_latest"
    PLAN_AGAIN = "change.plan_again"
    REMEDY = "change.remedy"  # what a blocker says to do first (e.g. re-enable a secret)


class RollbackBlock(StrEnum):
    PLAN_HEADER = "rollback.plan.header"
    PLAN_ACTIONS = "rollback.plan.actions"  # + ":<kind>:<subject>", see plan_actions_block_id
    FOLLOW_UPS = "change.follow_ups"
    ROLLOUT_CONTROLS = "rollout.controls"


def plan_actions_block_id(kind: str, subject: str) -> str:
    """The plan card's buttons block names its change's kind and subject, so a
    Confirm's job can start the kind's first read before it has loaded the change.
    Only a hint: the change's own row decides, and a read of another subject is dropped."""
    return f"{RollbackBlock.PLAN_ACTIONS}:{kind}:{subject}"


def kind_and_subject_of_plan_actions(block_id: str) -> tuple[str, str] | None:
    """(kind, subject) a plan card's buttons block names; None for any other block id.
    Cards posted before change kinds named only the service: a traffic rollback."""
    prefix = f"{RollbackBlock.PLAN_ACTIONS}:"
    if not block_id.startswith(prefix):
        return None
    named = block_id.removeprefix(prefix)
    kind, _, subject = named.partition(":")
    if not subject:
        kind, subject = KindName.TRAFFIC.value, kind
    return (kind, subject) if subject else None


class OverrideView(StrEnum):
    """The Override blocker modal: its callback id, and its reason input's ids."""

    CALLBACK = "rollback.override"
    REASON_BLOCK = "override.reason"
    REASON_INPUT = "override.reason_input"
