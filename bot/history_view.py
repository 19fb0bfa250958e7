"""`/rollback history <service>`: the last 10 rollbacks, ephemerally."""

from __future__ import annotations

from bot.deps import Deps
from bot.inbound import SlashCommand
from bot.messages.history import history_message


async def show_history(deps: Deps, service: str, command: SlashCommand) -> None:
    rollbacks = await deps.changes.history(service, limit=10)
    await deps.slack.respond(command.response_url, history_message(service, rollbacks))
