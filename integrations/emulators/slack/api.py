"""Slack Web API routes (`/api/<method>`) and response_url posts (`/response/<id>`).

Requests are decoded the way Slack accepts them (query string, form or JSON
body; JSON-in-a-string for blocks/attachments/view in form bodies), answered
with Slack's error codes, and recorded in the call log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .blocks import MAX_MESSAGE_TEXT, MAX_VIEW_BLOCKS, validate_blocks
from .faults import FaultPlan
from .files import FileError, SlackFiles
from .recording import CallLog, SlackCall
from .store import SlackStore
from .views import SlackViews, ViewError

PERMALINK_BASE = "https://emulated.slack.test"
JSON_ARGS = ("blocks", "attachments", "view", "metadata")
# A response_url may be used five times (Slack also expires it after 30 minutes).
RESPONSE_URL_MAX_USES = 5

Args = dict[str, Any]
Answer = dict[str, Any]


class ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _require(args: Args, *names: str, error: str = "invalid_arguments") -> None:
    if any(not args.get(n) for n in names):
        raise ApiError(error)


def _check_blocks(blocks: Any, max_blocks: int = 50) -> list[dict[str, Any]] | None:
    if blocks is None:
        return None
    problems = validate_blocks(blocks, max_blocks=max_blocks)
    if problems:
        raise ApiError("invalid_blocks", response_metadata={"messages": problems})
    return list(blocks)


class WebApi:
    def __init__(self, store: SlackStore, log: CallLog, faults: FaultPlan, *,
                 bot_token: str, team_name: str = "Emulated") -> None:
        self.store = store
        self.log = log
        self.faults = faults
        self.bot_token = bot_token
        self.team_name = team_name
        self.methods: dict[str, Callable[[Args], Awaitable[Answer]]] = {
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.update": self.chat_update,
            "chat.getPermalink": self.chat_get_permalink,
            "views.publish": self.views_publish,
            "views.open": self.views_open,
            "users.info": self.users_info,
            "conversations.info": self.conversations_info,
            "usergroups.users.list": self.usergroups_users_list,
            "files.getUploadURLExternal": self.files_get_upload_url_external,
            "files.completeUploadExternal": self.files_complete_upload_external,
        }
        self.files = SlackFiles()
        self.views = SlackViews(team_id=store.team_id, app_id=store.app_id,
                                bot_id=store.bot_id)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/api/{method}", self.handle_api),
            web.post("/response/{target}", self.handle_response_url),
            web.post("/upload/{file_id}", self.files.receive),
        ]

    # --- plumbing ------------------------------------------------------------------
    @staticmethod
    async def _decode(request: web.Request) -> tuple[Args, str | None]:
        args: Args = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except json.JSONDecodeError as exc:
                    raise ApiError("invalid_json") from exc
                if not isinstance(body, dict):
                    raise ApiError("invalid_json")
                args.update(body)
            else:
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in JSON_ARGS:
            value = args.get(key)
            if isinstance(value, str) and value.strip():
                try:
                    args[key] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ApiError(f"invalid_{key}_format" if key == "blocks"
                                   else "invalid_arguments") from exc
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else args.get("token")
        args.pop("token", None)
        return args, token

    @staticmethod
    def _json(status: int, body: Answer, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    async def handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args, token = await self._decode(request)
        except ApiError as exc:
            body = {"ok": False, "error": exc.error}
            self.log.record(SlackCall(method, {}, body, time.time(), 200))
            return self._json(200, body)
        fault = self.faults.take(method)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            status, body, headers = fault.render()
            self.log.record(SlackCall(method, args, body, time.time(), status))
            return self._json(status, body, headers)
        try:
            if not token:
                raise ApiError("not_authed")
            if token != self.bot_token:
                raise ApiError("invalid_auth")
            handler = self.methods.get(method)
            if handler is None:
                raise ApiError("unknown_method", req_method=method)
            body = {"ok": True, **await handler(args)}
        except ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
        self.log.record(SlackCall(method, args, body, time.time(), 200))
        return self._json(200, body)

    def _channel(self, ref: Any, *, posting: bool = False) -> str:
        channel = self.store.resolve_channel(str(ref)) if ref else None
        if channel is None:
            raise ApiError("channel_not_found")
        if posting and not channel.bot_is_member:
            raise ApiError("not_in_channel")
        return channel.id

    def _content(self, args: Args, *, required: bool = True) -> tuple[
            str | None, list[dict[str, Any]] | None, list[Any] | None]:
        text = args.get("text")
        blocks = _check_blocks(args.get("blocks"))
        attachments = args.get("attachments")
        if required and not text and not blocks and not attachments:
            raise ApiError("no_text")
        if text is not None and len(str(text)) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        return (None if text is None else str(text)), blocks, attachments

    # --- methods -------------------------------------------------------------------
    async def auth_test(self, args: Args) -> Answer:
        s = self.store
        return {
            "url": f"{PERMALINK_BASE}/", "team": self.team_name, "user": "rollbot",
            "team_id": s.team_id, "user_id": s.bot_user_id, "bot_id": s.bot_id,
            "is_enterprise_install": False,
        }

    async def chat_post_message(self, args: Args) -> Answer:
        channel_id = self._channel(args.get("channel"), posting=True)
        text, blocks, attachments = self._content(args)
        thread_ts = args.get("thread_ts") or None
        msg = self.store.post(
            channel_id, text=text or "", blocks=blocks, attachments=attachments,
            thread_ts=thread_ts, reply_broadcast=_flag(args.get("reply_broadcast")),
        )
        return {"channel": channel_id, "ts": msg["ts"], "message": self.store.public(msg)}

    async def chat_post_ephemeral(self, args: Args) -> Answer:
        channel_id = self._channel(args.get("channel"), posting=True)
        user = args.get("user")
        if not user:
            raise ApiError("invalid_arguments")
        if user not in self.store.users:
            raise ApiError("user_not_found")
        text, blocks, attachments = self._content(args)
        msg = self.store.post(channel_id, text=text or "", blocks=blocks,
                              attachments=attachments, thread_ts=args.get("thread_ts") or None,
                              ephemeral_to=str(user))
        return {"message_ts": msg["ts"]}

    async def chat_update(self, args: Args) -> Answer:
        channel_id = self._channel(args.get("channel"))
        _require(args, "ts", error="message_not_found")
        msg = self.store.find(channel_id, str(args["ts"]))
        # Ephemeral messages can only be changed through their response_url.
        if msg is None or msg.get("is_ephemeral"):
            raise ApiError("message_not_found")
        if msg.get("user") != self.store.bot_user_id:
            raise ApiError("cant_update_message")
        text, blocks, attachments = self._content(args, required=False)
        self.store.edit(msg, text=text, blocks=blocks, attachments=attachments)
        return {"channel": channel_id, "ts": msg["ts"], "text": msg["text"],
                "message": self.store.public(msg)}

    async def chat_get_permalink(self, args: Args) -> Answer:
        channel_id = self._channel(args.get("channel"))
        _require(args, "message_ts", error="message_not_found")
        msg = self.store.find(channel_id, str(args["message_ts"]))
        if msg is None or msg.get("is_ephemeral"):
            raise ApiError("message_not_found")
        link = f"{PERMALINK_BASE}/archives/{channel_id}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts"):
            link += f"?thread_ts={msg['thread_ts']}&cid={channel_id}"
        return {"channel": channel_id, "permalink": link}

    async def views_publish(self, args: Args) -> Answer:
        _require(args, "user_id", "view")
        user_id, view = str(args["user_id"]), args["view"]
        if user_id not in self.store.users:
            raise ApiError("user_not_found")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise ApiError("invalid_arguments")
        blocks = _check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS) or []
        current = self.store.home_views.get(user_id)
        if args.get("hash") and current is not None and args["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        published = {
            "id": current["id"] if current else f"V{user_id[1:]}HOME",
            "team_id": self.store.team_id, "type": "home", "blocks": blocks,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""), "external_id": view.get("external_id", ""),
            "state": {"values": {}}, "app_id": self.store.app_id, "bot_id": self.store.bot_id,
            "hash": hashlib.sha1(json.dumps(view, sort_keys=True).encode() + self.store.next_ts()
                                 .encode()).hexdigest()[:20],
        }
        self.store.home_views[user_id] = published
        return {"view": published}

    async def views_open(self, args: Args) -> Answer:
        _require(args, "trigger_id", "view")
        try:
            view = self.views.views_open(str(args["trigger_id"]), args["view"])
        except ViewError as exc:
            extra = {"response_metadata": {"messages": exc.messages}} if exc.messages else {}
            raise ApiError(exc.error, **extra) from None
        return {"view": view}

    async def users_info(self, args: Args) -> Answer:
        user = self.store.users.get(str(args.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_api(self.store.team_id)}

    async def conversations_info(self, args: Args) -> Answer:
        channel = self.store.channels.get(str(args.get("channel", "")))
        if channel is None:
            raise ApiError("channel_not_found")
        return {"channel": channel.to_api()}

    async def usergroups_users_list(self, args: Args) -> Answer:
        group = self.store.usergroups.get(str(args.get("usergroup", "")))
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group.members)}

    # --- response_url -------------------------------------------------------------------
    async def files_get_upload_url_external(self, args: Args) -> Answer:
        try:
            return self.files.upload_url(args)
        except FileError as exc:
            raise ApiError(exc.error) from exc

    async def files_complete_upload_external(self, args: Args) -> Answer:
        """Share uploaded files: a message in the channel (or thread) listing them."""
        try:
            files = self.files.to_share(args)
        except FileError as exc:
            raise ApiError(exc.error) from exc
        if not args.get("channel_id"):
            return {"files": [f.to_api() for f in files]}  # uploaded, shared nowhere
        channel_id = self._channel(args.get("channel_id"), posting=True)
        msg = self.store.post(channel_id, text=str(args.get("initial_comment") or ""),
                              thread_ts=args.get("thread_ts") or None)
        msg["files"] = [f.to_api() for f in files]
        for file in files:
            file.shared_in.append((channel_id, msg["ts"]))
        return {"files": [f.to_api() for f in files]}

    async def handle_response_url(self, request: web.Request) -> web.Response:
        url = str(request.url)
        try:
            body = await request.json()
        except (json.JSONDecodeError, ValueError):
            body = None
        args: Args = dict(body) if isinstance(body, dict) else {}
        args["response_url"] = url
        fault = self.faults.take("response_url")
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            status, answer, headers = fault.render()
            self.log.record(SlackCall("response_url", args, answer, time.time(), status))
            return web.Response(status=status, text=str(answer["error"]), headers=headers)
        status, error = 200, ""
        try:
            if not isinstance(body, dict):
                raise ApiError("invalid_payload")
            self._respond(request.match_info["target"], args)
        except ApiError as exc:
            error = exc.error
            status = 404 if error in ("expired_url", "used_url") else 400
        answer = {"ok": True} if status == 200 else {"ok": False, "error": error}
        self.log.record(SlackCall("response_url", args, answer, time.time(), status))
        return web.Response(status=status, text="ok" if status == 200 else error)

    def _respond(self, target_id: str, args: Args) -> None:
        target = self.store.response_targets.get(target_id)
        if target is None:
            raise ApiError("expired_url")
        if target.uses >= RESPONSE_URL_MAX_USES:
            raise ApiError("used_url")
        target.uses += 1
        original = (self.store.find(target.channel_id, target.message_ts)
                    if target.message_ts else None)
        if _flag(args.get("delete_original")):
            if original is not None:
                self.store.delete(target.channel_id, original["ts"])
            return
        text, blocks, attachments = self._content(args)
        if _flag(args.get("replace_original")) and original is not None:
            self.store.edit(original, text=text, blocks=blocks, attachments=attachments)
            return
        # No original to replace (e.g. a slash command): Slack posts a new message.
        in_channel = args.get("response_type") == "in_channel"
        self.store.post(
            target.channel_id, text=text or "", blocks=blocks, attachments=attachments,
            thread_ts=args.get("thread_ts") or None,
            ephemeral_to=None if in_channel else target.user_id,
        )
