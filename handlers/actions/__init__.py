from slack_bolt.async_app import AsyncApp

from bot.ids import FollowUpAction, RevisionListAction, RollbackAction, RolloutAction
from handlers.actions.cancel import cancel_rollback
from handlers.actions.confirm import confirm_rollback
from handlers.actions.final_step import final_step
from handlers.actions.follow_up import follow_up
from handlers.actions.gradual import confirm_gradual
from handlers.actions.override import override_blocker
from handlers.actions.roll_back_to import roll_back_to
from handlers.actions.rollout_control import rollout_control


def register(app: AsyncApp) -> None:
    app.action(RevisionListAction.ROLL_BACK_TO.value)(roll_back_to)
    app.action(RollbackAction.CONFIRM.value)(confirm_rollback)
    app.action(RollbackAction.CANCEL.value)(cancel_rollback)
    app.action(RollbackAction.GRADUAL.value)(confirm_gradual)
    app.action(RollbackAction.FINAL_STEP.value)(final_step)
    app.action(RollbackAction.OVERRIDE.value)(override_blocker)
    for control in RolloutAction:
        app.action(control.value)(rollout_control)
    for action in FollowUpAction:
        app.action(action.value)(follow_up)
