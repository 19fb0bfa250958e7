"""Work that runs after the ack, as procrastinate jobs.

Jobs live in Postgres, so any replica's in-process worker may run them and a
restart loses nothing. Each job gets the process's Deps through the worker's
additional context.
"""

from __future__ import annotations

import logging

import procrastinate

from bot import revisions_view
from bot.deps import from_context
from bot.inbound import SlashCommand

log = logging.getLogger(__name__)

blueprint = procrastinate.Blueprint()


@blueprint.task(name="list_revisions", pass_context=True, queue="interactive")
async def list_revisions(context: procrastinate.JobContext, *, service: str,
                         command: dict[str, str]) -> None:
    deps = from_context(context)
    await revisions_view.show_revisions(deps, service, SlashCommand(**command))


def build_job_app(database_url: str) -> procrastinate.App:
    from procrastinate import PsycopgConnector

    app = procrastinate.App(
        connector=PsycopgConnector(conninfo=database_url, min_size=1, max_size=4))
    app.add_tasks_from(blueprint, namespace="rollbot")
    return app
