"""Work that runs after the ack, as procrastinate jobs.

Jobs live in Postgres, so any replica's in-process worker may run them and a
restart loses nothing. Each job gets the process's Deps through the worker's
additional context.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import procrastinate

from bot import revisions_view
from bot.deps import from_context
from bot.inbound import SlashCommand

log = logging.getLogger(__name__)

LIST_REVISIONS = "rollbot.list_revisions"


async def list_revisions(context: procrastinate.JobContext, *, service: str,
                         command: dict[str, str]) -> None:
    deps = from_context(context)
    await revisions_view.show_revisions(deps, service, SlashCommand(**command))


# name -> (function, queue). Registered per App rather than through a shared
# Blueprint: add_tasks_from rebinds a blueprint's tasks to the first App, which
# breaks a second App in the same process (tests, the shell sandbox).
TASKS: dict[str, tuple[Callable[..., Awaitable[Any]], str]] = {
    LIST_REVISIONS: (list_revisions, "interactive"),
}


def build_job_app(database_url: str) -> procrastinate.App:
    from procrastinate import PsycopgConnector

    app = procrastinate.App(
        connector=PsycopgConnector(conninfo=database_url, min_size=1, max_size=4))
    for name, (func, queue) in TASKS.items():
        app.task(name=name, queue=queue, pass_context=True)(func)
    return app
