"""Inbound Slack payloads as small typed values (what handlers hand to bot/)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def _job_args(value: object) -> dict[str, Any]:
    # Every field is a str: a shallow copy is what dataclasses.asdict's recursive deep
    # copy would make, at a fraction of the cost (this runs in every listener).
    return dict(vars(value))


@dataclasses.dataclass(frozen=True)
class SlashCommand:
    user_id: str
    channel_id: str
    channel_name: str
    text: str
    response_url: str
    trigger_id: str = ""

    @classmethod
    def from_payload(cls, command: dict[str, Any]) -> SlashCommand:
        return cls(
            user_id=str(command.get("user_id", "")),
            channel_id=str(command.get("channel_id", "")),
            channel_name=str(command.get("channel_name", "")),
            text=str(command.get("text", "")),
            response_url=str(command.get("response_url", "")),
            trigger_id=str(command.get("trigger_id", "")),
        )

    def as_job_args(self) -> dict[str, Any]:
        return _job_args(self)


@dataclasses.dataclass(frozen=True)
class ButtonClick:
    user_id: str
    channel_id: str
    channel_name: str
    message_ts: str
    response_url: str
    action_id: str
    value: str
    action_ts: str
    block_id: str = ""  # default: jobs queued before the field existed
    trigger_id: str = ""  # opens a modal (views.open) within 3 s of the click

    @classmethod
    def from_body(cls, body: dict[str, Any], action: dict[str, Any]) -> ButtonClick:
        container = body.get("container") or {}
        channel = body.get("channel") or {}
        return cls(
            user_id=str((body.get("user") or {}).get("id", "")),
            channel_id=str(channel.get("id") or container.get("channel_id", "")),
            channel_name=str(channel.get("name", "")),
            message_ts=str(container.get("message_ts", "")),
            response_url=str(body.get("response_url", "")),
            action_id=str(action.get("action_id", "")),
            value=str(action.get("value", "")),
            action_ts=str(action.get("action_ts", "")),
            block_id=str(action.get("block_id", "")),
            trigger_id=str(body.get("trigger_id", "")),
        )

    def change_id(self) -> int | None:
        """The change a plan card's button names (its value: str(id)); None if
        malformed. Only the canonical form: "07" or " 7" name nothing."""
        value = self.value
        if not (value.isascii() and value.isdigit()) or value.startswith("0") or len(value) > 18:
            return None
        return int(value)

    def json_value(self) -> dict[str, Any] | None:
        """The button's JSON value, or None if it is not a JSON object."""
        try:
            value = json.loads(self.value)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def as_job_args(self) -> dict[str, Any]:
        return _job_args(self)


@dataclasses.dataclass(frozen=True)
class OverrideSubmission:
    """The Override blocker modal, submitted: who, which change, and the reason typed."""

    user_id: str
    change_id: int | None
    reason: str

    @classmethod
    def from_view(cls, body: dict[str, Any], view: dict[str, Any], block_id: str,
                  action_id: str) -> OverrideSubmission:
        values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
        reason = str((values.get(action_id) or {}).get("value") or "").strip()
        metadata = str(view.get("private_metadata") or "")
        change_id = int(metadata) if metadata.isdigit() and len(metadata) <= 18 else None
        return cls(str((body.get("user") or {}).get("id", "")), change_id, reason)

    def as_job_args(self) -> dict[str, Any]:
        return _job_args(self)
