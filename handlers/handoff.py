"""What a listener does when its hand-off to the job queue fails: tell the user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.deps import Deps
from bot.messages.base import ephemeral_error


def report_failed_handoff(deps: Deps, response_url: str
                          ) -> Callable[[BaseException], Awaitable[None]]:
    async def tell_user(exc: BaseException) -> None:
        await deps.slack.respond(response_url, ephemeral_error(
            "rollbot could not queue that request (its database is unreachable).",
            "Nothing was changed. Try again in a minute."))

    return tell_user
