"""The emulator's control API: drive it from another process (curl, a test that
runs `rollbot emulate` as a subprocess).

    POST /_emulator/command  {"app_url", "text", "user_id", "channel_id",
                              "channel_name"?, "command"?}   -> like send_command
    POST /_emulator/click    {"app_url", "action_id", "value"?, "user_id",
                              "channel_id", "message_ts"?, "block_id"?} -> like click
    GET  /_emulator/calls[?method=chat.postMessage]          -> recorded calls
    GET  /_emulator/messages?channel=C0INCIDENT[&include_ephemeral=false]

A loopback test tool: no auth, mounted only when the emulator listens on a
loopback address, answers only loopback peers, and delivers only to loopback
`app_url`s, so it can never be made to send traffic elsewhere.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .delivery import DeliveryResult

if TYPE_CHECKING:
    from .emulator import SlackEmulator

PREFIX = "/_emulator"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    pass


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost (brackets and a trailing dot tolerated)."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_app_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise BadRequest("app_url is required (e.g. http://127.0.0.1:3000/slack/events)")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise BadRequest(f"app_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequest("app_url must be an http:// or https:// URL")
    if not is_loopback_host(host):
        raise BadRequest(
            f"app_url host {host!r} is not loopback: the emulator only delivers to "
            "127.0.0.0/8, ::1 or localhost")
    return url


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _result_json(result: DeliveryResult) -> dict[str, Any]:
    return {"status": result.status, "body": result.body, "elapsed": result.elapsed,
            "response_url": result.response_url, "message_ts": result.message_ts}


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _opt(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _req(data: dict[str, Any], name: str) -> str:
    value = _opt(data, name)
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class ControlApi:
    def __init__(self, emulator: SlackEmulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/command", self._guard(self.command)),
            web.post(f"{PREFIX}/click", self._guard(self.click)),
            web.get(f"{PREFIX}/calls", self._guard(self.calls)),
            web.get(f"{PREFIX}/messages", self._guard(self.messages)),
        ]

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not is_loopback_host(request.remote):
                return _error(403, "the emulator control API answers loopback clients only")
            try:
                return await handler(request)
            except BadRequest as exc:
                return _error(400, str(exc))
        return guarded

    async def command(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        app_url = check_app_url(data.get("app_url"))
        try:
            result = await self.emulator.send_command(
                app_url, _opt(data, "text") or "", user_id=_req(data, "user_id"),
                channel_id=_req(data, "channel_id"), channel_name=_opt(data, "channel_name"),
                command=_opt(data, "command") or "/rollback")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _error(502, f"delivery to {app_url} failed: {type(exc).__name__}: {exc}")
        return web.json_response(_result_json(result))

    async def click(self, request: web.Request) -> web.Response:
        data = await _json_object(request)
        app_url = check_app_url(data.get("app_url"))
        try:
            result = await self.emulator.click(
                app_url, action_id=_req(data, "action_id"), value=_opt(data, "value"),
                user_id=_req(data, "user_id"), channel_id=_req(data, "channel_id"),
                message_ts=_opt(data, "message_ts"), block_id=_opt(data, "block_id"))
        except (AssertionError, ValueError) as exc:  # no such message / no value to send
            raise BadRequest(str(exc)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _error(502, f"delivery to {app_url} failed: {type(exc).__name__}: {exc}")
        return web.json_response(_result_json(result))

    async def calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        calls = self.emulator.calls_to(method) if method else list(self.emulator.calls)
        body = [{"method": c.method, "args": c.args, "response": c.response,
                 "http_status": c.http_status, "time": c.time} for c in calls]
        return web.json_response(body, dumps=_dumps)

    async def messages(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        if not channel:
            raise BadRequest("channel is required, e.g. ?channel=C0INCIDENT")
        include_ephemeral = request.query.get("include_ephemeral", "true").lower() not in (
            "false", "0", "no")
        return web.json_response(
            self.emulator.messages(channel, include_ephemeral=include_ephemeral), dumps=_dumps)
