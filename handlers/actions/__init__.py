from slack_bolt.async_app import AsyncApp

from bot.ids import FollowUpAction, RevisionListAction, RollbackAction
from handlers.actions.cancel import cancel_rollback
from handlers.actions.confirm import confirm_rollback
from handlers.actions.follow_up import follow_up
from handlers.actions.roll_back_to import roll_back_to


def register(app: AsyncApp) -> None:
    app.action(RevisionListAction.ROLL_BACK_TO.value)(roll_back_to)
    app.action(RollbackAction.CONFIRM.value)(confirm_rollback)
    app.action(RollbackAction.CANCEL.value)(cancel_rollback)
    for action in FollowUpAction:
        app.action(action.value)(follow_up)
