"""The emulated workspace: users, channels, user groups, messages and response URLs.

Messages are plain dicts shaped like Slack's message objects, so the tests and
the block_actions payloads can use them as Slack would hand them over.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import uuid
from typing import Any

# Keys the emulator keeps on stored messages that Slack never sends back.
_PRIVATE_KEYS = ("is_ephemeral", "visible_to")


@dataclasses.dataclass
class User:
    id: str
    name: str
    real_name: str = ""
    is_admin: bool = False
    is_bot: bool = False
    email: str = ""
    tz: str = "Europe/Bucharest"

    def to_api(self, team_id: str) -> dict[str, Any]:
        real = self.real_name or self.name
        return {
            "id": self.id, "team_id": team_id, "name": self.name, "deleted": False,
            "real_name": real, "tz": self.tz, "is_admin": self.is_admin,
            "is_owner": False, "is_bot": self.is_bot, "is_app_user": False,
            "profile": {
                "real_name": real, "display_name": self.name, "email": self.email,
                "team": team_id,
            },
        }


@dataclasses.dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    # Bots must be invited before they can post; False reproduces "not_in_channel".
    bot_is_member: bool = True
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "name_normalized": self.name,
            "is_channel": not self.is_im and not self.is_private,
            "is_group": self.is_private, "is_im": self.is_im, "is_private": self.is_private,
            "is_archived": False, "is_general": self.name == "general",
            "is_member": self.bot_is_member, "created": self.created,
        }


@dataclasses.dataclass
class Usergroup:
    id: str
    handle: str
    members: list[str]


@dataclasses.dataclass
class ResponseTarget:
    """What a response_url points at: who triggered it, where, and which message."""

    id: str
    channel_id: str
    user_id: str
    message_ts: str | None = None
    uses: int = 0


class SlackStore:
    def __init__(self, *, team_id: str, bot_user_id: str, bot_id: str, app_id: str) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.usergroups: dict[str, Usergroup] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.response_targets: dict[str, ResponseTarget] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._last_ts_micros = 0

    # --- directory -------------------------------------------------------------
    def add_user(self, user_id: str, name: str, real_name: str = "", is_admin: bool = False,
                 *, is_bot: bool = False, email: str = "") -> User:
        user = User(user_id, name, real_name, is_admin, is_bot,
                    email or f"{name}@emulated.slack.test")
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, *, is_private: bool = False,
                    bot_is_member: bool = True) -> Channel:
        channel = Channel(channel_id, name, is_private=is_private, bot_is_member=bot_is_member)
        self.channels[channel_id] = channel
        return channel

    def add_usergroup(self, group_id: str, handle: str, members: list[str]) -> Usergroup:
        group = Usergroup(group_id, handle, list(members))
        self.usergroups[group_id] = group
        return group

    def resolve_channel(self, ref: str) -> Channel | None:
        """Slack accepts a channel id, a channel name (with or without '#'), or a
        user id (which opens the bot's DM with that user)."""
        if ref in self.channels:
            return self.channels[ref]
        if ref in self.users:
            dm_id = "D" + ref[1:]
            if dm_id not in self.channels:
                self.channels[dm_id] = Channel(dm_id, ref, is_im=True)
            return self.channels[dm_id]
        name = ref.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name and not c.is_im), None)

    # --- messages --------------------------------------------------------------
    def next_ts(self) -> str:
        # Wall-clock based like Slack's, but strictly increasing so ts is a unique key.
        micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def post(self, channel_id: str, *, text: str, blocks: list[dict[str, Any]] | None = None,
             user: str | None = None, thread_ts: str | None = None,
             reply_broadcast: bool = False, attachments: list[Any] | None = None,
             ephemeral_to: str | None = None) -> dict[str, Any]:
        ts = self.next_ts()
        user = user or self.bot_user_id
        msg: dict[str, Any] = {"type": "message", "ts": ts, "user": user, "text": text,
                               "blocks": blocks or [], "team": self.team_id}
        if user == self.bot_user_id:
            msg["bot_id"] = self.bot_id
            msg["app_id"] = self.app_id
        if attachments:
            msg["attachments"] = attachments
        if thread_ts:
            msg["thread_ts"] = thread_ts
            if reply_broadcast:
                msg["subtype"] = "thread_broadcast"
        if ephemeral_to:
            msg["is_ephemeral"] = True
            msg["visible_to"] = ephemeral_to
        elif thread_ts:
            parent = self.find(channel_id, thread_ts)
            if parent is not None:
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
                users = parent.setdefault("reply_users", [])
                if user not in users:
                    users.append(user)
        self._messages.setdefault(channel_id, []).append(msg)
        return msg

    def find(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self._messages.get(channel_id, []) if m["ts"] == ts), None)

    def find_anywhere(self, ts: str) -> tuple[str, dict[str, Any]] | None:
        for channel_id, msgs in self._messages.items():
            for msg in msgs:
                if msg["ts"] == ts:
                    return channel_id, msg
        return None

    def edit(self, msg: dict[str, Any], *, text: str | None,
             blocks: list[dict[str, Any]] | None, attachments: list[Any] | None = None) -> None:
        if text is not None:
            msg["text"] = text
        # Slack keeps the previous blocks when the field is omitted; [] clears them.
        if blocks is not None:
            msg["blocks"] = blocks
        if attachments is not None:
            msg["attachments"] = attachments
        msg["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}

    def delete(self, channel_id: str, ts: str) -> bool:
        msgs = self._messages.get(channel_id, [])
        before = len(msgs)
        msgs[:] = [m for m in msgs if m["ts"] != ts]
        return len(msgs) != before

    def messages(self, channel_id: str, *, include_ephemeral: bool = True) -> list[dict[str, Any]]:
        # Copies, so a test holding a message sees it as it was, not later edits.
        return [copy.deepcopy(m) for m in self._messages.get(channel_id, [])
                if include_ephemeral or not m.get("is_ephemeral")]

    @staticmethod
    def public(msg: dict[str, Any]) -> dict[str, Any]:
        """The message as Slack would show it to the app (no emulator bookkeeping)."""
        return {k: copy.deepcopy(v) for k, v in msg.items() if k not in _PRIVATE_KEYS}

    # --- response URLs ----------------------------------------------------------
    def new_response_target(self, *, channel_id: str, user_id: str,
                            message_ts: str | None = None) -> ResponseTarget:
        target = ResponseTarget(uuid.uuid4().hex, channel_id, user_id, message_ts)
        self.response_targets[target.id] = target
        return target
