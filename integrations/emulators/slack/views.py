"""Modals as Slack runs them: `views.open` (from a trigger id Slack issued to the app
less than 3 s ago, usable once), the open views per user, and the `view_submission`
payload a submit sends (its state.values from what the user typed).

Validation follows Slack's: a modal with an `input` block needs `submit`; titles and
button texts are plain_text of at most 24 characters; at most 100 blocks;
private_metadata at most 3000 characters; input labels at most 2000.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from typing import Any

from .blocks import MAX_VIEW_BLOCKS, validate_blocks

TRIGGER_TTL_SECONDS = 3.0  # Slack: "trigger_id expires 3 seconds after it's issued"
_KEEP_SECONDS = 60.0


class ViewError(Exception):
    def __init__(self, error: str, messages: list[str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []


@dataclasses.dataclass
class _Trigger:
    user_id: str
    issued: float
    used: bool = False


def _plain(value: Any, where: str, limit: int, problems: list[str]) -> None:
    if not isinstance(value, dict) or value.get("type") != "plain_text":
        problems.append(f"{where}: must be a plain_text object")
    elif not value.get("text") or len(str(value["text"])) > limit:
        problems.append(f"{where}: must be 1 to {limit} characters")


def _check_inputs(blocks: list[Any], problems: list[str]) -> None:
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "input":
            continue
        where = f"[json-pointer:/view/blocks/{i}]"
        _plain(block.get("label"), f"{where}/label", 2000, problems)
        element = block.get("element")
        if not isinstance(element, dict) or element.get("type") != "plain_text_input":
            problems.append(f"{where}/element: the emulator models plain_text_input only")
            continue
        if not element.get("action_id"):
            problems.append(f"{where}/element/action_id: required")
        if int(element.get("max_length", 3000)) > 3000:
            problems.append(f"{where}/element/max_length: at most 3000")


def check_modal(view: Any) -> list[str]:
    """Problems with a modal view, in Slack's response_metadata style."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["[json-pointer:/view/type]: must be 'modal'"]
    problems: list[str] = []
    _plain(view.get("title"), "[json-pointer:/view/title]", 24, problems)
    for button in ("submit", "close"):
        if button in view:
            _plain(view[button], f"[json-pointer:/view/{button}]", 24, problems)
    blocks = view.get("blocks")
    inputs = [b for b in blocks or [] if isinstance(b, dict) and b.get("type") == "input"]
    plain = [b for b in blocks or [] if not (isinstance(b, dict) and b.get("type") == "input")]
    problems += validate_blocks(plain, max_blocks=MAX_VIEW_BLOCKS)
    if isinstance(blocks, list) and len(blocks) > MAX_VIEW_BLOCKS:
        problems.append(f"no more than {MAX_VIEW_BLOCKS} items allowed")
    _check_inputs(blocks or [], problems)
    if inputs and "submit" not in view:
        problems.append("[json-pointer:/view/submit]: required when the view has inputs")
    if len(str(view.get("private_metadata", ""))) > 3000:
        problems.append("[json-pointer:/view/private_metadata]: at most 3000 characters")
    if len(str(view.get("callback_id", ""))) > 255:
        problems.append("[json-pointer:/view/callback_id]: at most 255 characters")
    return problems


class SlackViews:
    """Trigger ids issued with deliveries, and the modals open for each user."""

    def __init__(self, *, team_id: str, app_id: str, bot_id: str) -> None:
        self.team_id, self.app_id, self.bot_id = team_id, app_id, bot_id
        self.clock = time.monotonic  # tests move it instead of sleeping 3 s
        self._triggers: dict[str, _Trigger] = {}
        self.open: dict[str, dict[str, Any]] = {}  # view id -> {"user_id", "view"}

    def issue(self, trigger_id: str, user_id: str) -> None:
        now = self.clock()
        if len(self._triggers) > 1000:  # lazily forget old ones
            self._triggers = {k: t for k, t in self._triggers.items()
                              if now - t.issued < _KEEP_SECONDS}
        self._triggers[trigger_id] = _Trigger(user_id, now)

    def _take(self, trigger_id: str) -> _Trigger:
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise ViewError("invalid_trigger_id")
        if trigger.used:
            raise ViewError("exchanged_trigger_id")
        if self.clock() - trigger.issued > TRIGGER_TTL_SECONDS:
            raise ViewError("expired_trigger_id")
        trigger.used = True
        return trigger

    def views_open(self, trigger_id: str, view: Any) -> dict[str, Any]:
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError:
                raise ViewError("invalid_arguments", ["view is not JSON"]) from None
        problems = check_modal(view)
        if problems:
            raise ViewError("invalid_arguments", problems)
        trigger = self._take(trigger_id)
        view_id = "V" + secrets.token_hex(5).upper()
        blocks = [dict(b) for b in view.get("blocks", [])]
        for i, block in enumerate(blocks):
            block.setdefault("block_id", f"b{i}")
        opened = {
            "id": view_id, "team_id": self.team_id, "type": "modal", "blocks": blocks,
            "title": view["title"], "submit": view.get("submit"), "close": view.get("close"),
            "private_metadata": str(view.get("private_metadata", "")),
            "callback_id": str(view.get("callback_id", "")), "external_id": "",
            "state": {"values": {}}, "root_view_id": view_id, "previous_view_id": None,
            "app_id": self.app_id, "bot_id": self.bot_id,
            "clear_on_close": bool(view.get("clear_on_close")),
            "notify_on_close": bool(view.get("notify_on_close")),
            "hash": hashlib.sha1(f"{view_id}{time.time()}".encode()).hexdigest()[:20],
        }
        self.open[view_id] = {"user_id": trigger.user_id, "view": opened}
        return opened

    def of_user(self, user_id: str) -> list[dict[str, Any]]:
        return [v["view"] for v in self.open.values() if v["user_id"] == user_id]

    @staticmethod
    def state_of(view: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
        """state.values as Slack sends them: each input's typed text, by block and
        action id; a required input left empty cannot be submitted (Slack's client
        refuses), so that is a ValueError here."""
        state: dict[str, Any] = {}
        for block in view["blocks"]:
            if block.get("type") != "input":
                continue
            element = block["element"]
            text = values.get(element["action_id"], "")
            if not text and not block.get("optional"):
                label = block.get("label", {}).get("text", element["action_id"])
                raise ValueError(f"the required input {label!r} is empty")
            state.setdefault(block["block_id"], {})[element["action_id"]] = {
                "type": "plain_text_input", "value": text or None}
        return {"values": state}

    def answered(self, view_id: str, result: Any) -> None:
        """What the app's ack to a submission does to the modal."""
        try:
            body = json.loads(result.body) if result.body.strip() else {}
        except json.JSONDecodeError:
            body = {}
        action = body.get("response_action") if isinstance(body, dict) else None
        if action == "errors":
            result.view_errors = {str(k): str(v) for k, v in (body.get("errors") or {}).items()}
        elif action == "update" and isinstance(body.get("view"), dict):
            self.open[view_id]["view"] = {**self.open[view_id]["view"], **body["view"]}
        else:  # empty, "clear" (or "push", which the emulator does not stack)
            self.open.pop(view_id, None)
