from slack_bolt.async_app import AsyncApp

from bot.ids import OverrideView
from handlers.views.override_submitted import override_submitted


def register(app: AsyncApp) -> None:
    app.view(OverrideView.CALLBACK.value)(override_submitted)
