"""`/rollback help`: the runbook's quick reference, from the catalog."""

from __future__ import annotations

from slack_sdk.models.blocks import DividerBlock, HeaderBlock

from bot.catalog import Catalog
from bot.changes import registry
from bot.messages.base import Message, context, mrkdwn_section


def help_message(catalog: Catalog) -> Message:
    services = ", ".join(
        f"`{key}` ({svc.cloud_run_service})" for key, svc in sorted(catalog.services.items())
    )
    # Every change kind's own lines come from the registry: a new kind shows up here.
    commands = "\n".join([
        "`/rollback <service>` — the last 10 revisions, with a button to roll back to each",
        *(f"`{line.syntax}` — {line.does}" for line in registry.usage()),
        "`/rollback history <service>` — the last 10 changes of a service, of every kind",
        "`/rollback verify <service>` — health, metrics and logs now, with a verdict",
        "`/rollback help` — this reference",
    ])
    blocks = [
        HeaderBlock(text="rollbot — rollback quick reference"),
        mrkdwn_section(f"*Commands*\n{commands}"),
        mrkdwn_section(f"*Services*: {services}\nA revision may be given in full "
                       "(`medicalcor-api-00014-def`) or by its suffix (`00014-def`)."),
    ]
    reference = catalog.runbook.quick_reference
    if reference:
        rows = "\n".join(f"• *{scenario}*: `{action}`" for scenario, action in reference)
        blocks += [DividerBlock(), mrkdwn_section(f"*Rollback scenarios*\n{rows}")]
    if catalog.runbook.restrictions:
        stops = "\n".join(f"• {item}" for item in catalog.runbook.restrictions)
        blocks.append(mrkdwn_section(f"*Stop and escalate if*\n{stops}"))
    blocks.append(context(
        f"Rollbacks run only in channels matching `{catalog.slack.incident_channel_pattern}`."))
    text = "rollbot quick reference: " + " · ".join(line.syntax for line in registry.usage())
    return Message(text=text, blocks=tuple(blocks))
