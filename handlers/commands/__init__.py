from slack_bolt.async_app import AsyncApp

from handlers.commands.flag import flag_command
from handlers.commands.killswitch import killswitch_command
from handlers.commands.rollback import rollback_command

COMMANDS = ("/rollback", "/flag", "/killswitch")


def register(app: AsyncApp) -> None:
    app.command("/rollback")(rollback_command)
    app.command("/flag")(flag_command)
    app.command("/killswitch")(killswitch_command)
