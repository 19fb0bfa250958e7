from slack_bolt.async_app import AsyncApp

from bot.ids import RevisionListAction
from handlers.actions.roll_back_to import roll_back_to


def register(app: AsyncApp) -> None:
    app.action(RevisionListAction.ROLL_BACK_TO.value)(roll_back_to)
