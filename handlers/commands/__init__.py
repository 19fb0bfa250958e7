from slack_bolt.async_app import AsyncApp

from handlers.commands.rollback import rollback_command

COMMANDS = ("/rollback",)


def register(app: AsyncApp) -> None:
    app.command("/rollback")(rollback_command)
