"""`/rollback <service>`: the service's recent revisions, newest first."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import ButtonElement, HeaderBlock, SectionBlock

from bot.ids import RevisionListAction
from bot.messages.base import Message, context, mrkdwn_section, when
from integrations.cloud_run import Revision, ServiceState


def roll_back_button_value(service: str, revision: str) -> str:
    return json.dumps({"service": service, "revision": revision}, separators=(",", ":"))


def _revision_line(rev: Revision, percent: int) -> str:
    serving = f"*{percent}% traffic*" if percent else "no traffic"
    ready = "Ready" if rev.ready else f"NOT Ready ({rev.ready_message})"
    creator = f" by {rev.creator}" if rev.creator else ""
    return (
        f"*{rev.name}* · {serving}\n"
        f"`{rev.image}`\ncreated {when(rev.created)}{creator} · {ready}"
    )


def revisions_message(
    service_key: str, region: str, state: ServiceState, revisions: list[Revision]
) -> Message:
    serving = state.serving()
    blocks: list = [HeaderBlock(text=f"Revisions of {service_key} ({state.name})"[:150])]
    now = ", ".join(f"{rev} {pct}%" for rev, pct in serving.items()) or "nothing"
    blocks.append(context(f"Serving now: {now} · region {region} · newest first"))
    for rev in revisions:
        percent = serving.get(rev.name, 0)
        accessory = None
        if percent < 100 and rev.ready:
            accessory = ButtonElement(
                text="Roll back to this",
                action_id=RevisionListAction.ROLL_BACK_TO,
                value=roll_back_button_value(service_key, rev.name),
            )
        blocks.append(SectionBlock(
            text=mrkdwn_section(_revision_line(rev, percent)).text, accessory=accessory))
    if not revisions:
        blocks.append(mrkdwn_section("No revisions found."))
    text = f"Revisions of {service_key}: " + ", ".join(
        f"{r.name} ({serving.get(r.name, 0)}%)" for r in revisions)
    return Message(text=text[:3000], blocks=tuple(blocks))
