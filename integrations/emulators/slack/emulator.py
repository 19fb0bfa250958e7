"""SlackEmulator: a local Slack (Web API, response URLs, signed deliveries) for tests.

Point the app's AsyncWebClient at `api_url`, deliver commands and clicks with
`send_command` / `click`, and assert on `calls`, `wait_for` and `messages`. From
another process, use the control API under `/_emulator/` (see control.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

from .api import WebApi
from .blocks import find_element
from .control import ControlApi, is_loopback_host
from .delivery import (
    DeliveryResult,
    block_actions_form,
    block_actions_payload,
    command_form,
    deliver,
    delivery_headers,
    sign,
    view_submission_payload,
)
from .faults import FaultPlan
from .recording import CallLog, SlackCall
from .store import SlackStore, User

DEFAULT_USERS = (
    ("U0ALICE", "alice", "Alice Popescu"),
    ("U0BOB", "bob", "Bob Ionescu"),
    ("U0CAROL", "carol", "Carol Marinescu"),
)
DEFAULT_CHANNELS = (("C0INCIDENT", "inc-api-outage"), ("C0GENERAL", "general"))
DEFAULT_USERGROUPS = (("S0ONCALL", "sre-oncall", ["U0ALICE", "U0BOB"]),)
VERIFICATION_TOKEN = "emulator-verification-token"  # the deprecated token Slack still sends


class SlackEmulator:
    def __init__(self, *, signing_secret: str, bot_token: str = "xoxb-emulator-token",
                 team_id: str = "T0EMULATE", bot_user_id: str = "U0ROLLBOT",
                 team_domain: str = "emulated", seed_defaults: bool = True) -> None:
        self.signing_secret = signing_secret
        self._session: aiohttp.ClientSession | None = None  # deliveries, kept alive
        self.bot_token = bot_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.app_id = "A" + bot_user_id[1:]
        self.store = SlackStore(team_id=team_id, bot_user_id=bot_user_id, bot_id=self.bot_id,
                                app_id=self.app_id)
        self.log = CallLog()
        self.faults = FaultPlan()
        self.api = WebApi(self.store, self.log, self.faults, bot_token=bot_token)
        self.deliveries: list[DeliveryResult] = []
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self.store.add_user(bot_user_id, "rollbot", "Rollbot", is_bot=True)
        if seed_defaults:
            for user_id, name, real_name in DEFAULT_USERS:
                self.add_user(user_id, name, real_name)
            for channel_id, channel_name in DEFAULT_CHANNELS:
                self.add_channel(channel_id, channel_name)
            for group_id, handle, members in DEFAULT_USERGROUPS:
                self.add_usergroup(group_id, handle, members)

    # --- lifecycle -------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.add_routes(self.api.routes())
        if is_loopback_host(host):  # a loopback test tool: never exposed beyond the host
            app.add_routes(ControlApi(self).routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._host = host
        self._port = int(self._runner.addresses[0][1])
        self.api.files.upload_base = f"{self.base_url}/upload"

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackEmulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("SlackEmulator is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def api_url(self) -> str:
        # slack_sdk appends the method name, so the trailing slash matters.
        return f"{self.base_url}/api/"

    # --- recording -------------------------------------------------------------------
    @property
    def calls(self) -> list[SlackCall]:
        return self.log.calls

    def calls_to(self, method: str) -> list[SlackCall]:
        return self.log.calls_to(method)

    async def wait_for(self, method: str,
                       predicate: Callable[[SlackCall], bool] = lambda call: True,
                       timeout: float = 5.0,  # noqa: ASYNC109 - the agreed test API
                       ) -> SlackCall:
        return await self.log.wait_for(method, predicate, timeout)

    def inject(self, method: str, *, status: int = 429, retry_after: int = 1, count: int = 1,
               error: str | None = None, delay: float = 0.0) -> None:
        """Fail the next `count` calls to `method` ("response_url" for response URLs)."""
        self.faults.inject(method, status=status, retry_after=retry_after, count=count,
                           error=error, delay=delay)

    # --- workspace -------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, real_name: str = "", is_admin: bool = False,
                 *, email: str = "") -> User:
        return self.store.add_user(user_id, name, real_name, is_admin, email=email)

    def add_channel(self, channel_id: str, name: str, *, is_private: bool = False,
                    bot_is_member: bool = True) -> None:
        self.store.add_channel(channel_id, name, is_private=is_private,
                               bot_is_member=bot_is_member)

    def add_usergroup(self, group_id: str, handle: str, members: list[str]) -> None:
        self.store.add_usergroup(group_id, handle, members)

    def messages(self, channel_id: str, *, include_ephemeral: bool = True) -> list[dict[str, Any]]:
        """Stored messages in ts order; ephemeral ones carry is_ephemeral and visible_to."""
        return self.store.messages(channel_id, include_ephemeral=include_ephemeral)

    def thread(self, channel_id: str, thread_ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages(channel_id, include_ephemeral=False)
                if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def ephemeral_messages(self, channel_id: str, user_id: str | None = None,
                           ) -> list[dict[str, Any]]:
        return [m for m in self.messages(channel_id) if m.get("is_ephemeral")
                and (user_id is None or m.get("visible_to") == user_id)]

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        return self.store.home_views.get(user_id)

    # --- deliveries ------------------------------------------------------------------
    def sign(self, body: bytes, timestamp: int | None = None,
             secret: str | None = None) -> dict[str, str]:
        return sign(self.signing_secret if secret is None else secret, body, timestamp)

    def new_response_url(self, *, channel_id: str, user_id: str,
                         message_ts: str | None = None) -> str:
        target = self.store.new_response_target(channel_id=channel_id, user_id=user_id,
                                                message_ts=message_ts)
        return f"{self.base_url}/response/{target.id}"

    def _names(self, user_id: str, channel_id: str,
               channel_name: str | None) -> tuple[str, str]:
        user = self.store.users.get(user_id)
        channel = self.store.channels.get(channel_id)
        if channel_name is None:
            if channel is not None and not channel.is_im:
                channel_name = channel.name
            else:
                channel_name = "directmessage" if channel_id.startswith("D") else "privategroup"
        return (user.name if user else user_id), channel_name

    async def _deliver(self, app_url: str, body: bytes, *, response_url: str,
                       headers_override: dict[str, str | None] | None, timestamp: int | None,
                       signing_secret: str | None, http_timeout: float) -> DeliveryResult:
        headers = delivery_headers(self.sign(body, timestamp, signing_secret), headers_override)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        result = await deliver(app_url, body, headers, response_url=response_url,
                               http_timeout=http_timeout, session=self._session)
        self.deliveries.append(result)
        return result

    async def send_command(self, app_url: str, text: str, *, user_id: str, channel_id: str,
                           channel_name: str | None = None, command: str = "/rollback",
                           headers_override: dict[str, str | None] | None = None,
                           timestamp: int | None = None, signing_secret: str | None = None,
                           http_timeout: float = 10.0) -> DeliveryResult:
        """POST a slash command to the app as Slack does; returns the app's ack."""
        user_name, channel_name = self._names(user_id, channel_id, channel_name)
        response_url = self.new_response_url(channel_id=channel_id, user_id=user_id)
        body = command_form(
            token=VERIFICATION_TOKEN, team_id=self.team_id, team_domain=self.team_domain,
            channel_id=channel_id, channel_name=channel_name, user_id=user_id,
            user_name=user_name, command=command, text=text, api_app_id=self.app_id,
            response_url=response_url,
        )
        self.api.views.issue(parse_qs(body.decode())["trigger_id"][0], user_id)
        result = await self._deliver(app_url, body, response_url=response_url,
                                     headers_override=headers_override, timestamp=timestamp,
                                     signing_secret=signing_secret, http_timeout=http_timeout)
        if result.status == 200 and result.body.strip():
            result.message_ts = self._show_ack(result, channel_id, user_id)
        return result

    def _show_ack(self, result: DeliveryResult, channel_id: str, user_id: str) -> str | None:
        """Slack shows a command's ack body like a response_url post (ephemeral unless
        response_type is in_channel); a non-JSON body is shown as plain text."""
        try:
            body = json.loads(result.body)
        except json.JSONDecodeError:
            body = {"text": result.body}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return None
        in_channel = body.get("response_type") == "in_channel"
        blocks = body.get("blocks")
        msg = self.store.post(channel_id, text=str(body.get("text") or ""),
                              blocks=blocks if isinstance(blocks, list) else None,
                              ephemeral_to=None if in_channel else user_id)
        return str(msg["ts"])

    async def click(self, app_url: str, *, action_id: str, value: str | None = None,
                    user_id: str, channel_id: str, message_ts: str | None = None,
                    block_id: str | None = None, response_url: str | None = None,
                    is_ephemeral: bool | None = None, include_message: bool | None = None,
                    channel_name: str | None = None,
                    headers_override: dict[str, str | None] | None = None,
                    timestamp: int | None = None, signing_secret: str | None = None,
                    http_timeout: float = 10.0) -> DeliveryResult:
        """POST a block_actions interaction for a button click.

        With `message_ts`, the stored message supplies the button's block_id,
        value and text when not given. Slack leaves `message` out of payloads
        from ephemeral messages, so `include_message` defaults to "not ephemeral".
        """
        msg = self.store.find(channel_id, message_ts) if message_ts else None
        if message_ts and msg is None:
            raise AssertionError(f"click: no message {message_ts} in {channel_id}; "
                                 f"stored: {[m['ts'] for m in self.messages(channel_id)]}")
        button_text = action_id
        if msg is not None:
            found = find_element(msg.get("blocks") or [], action_id)
            if found is not None:
                found_block_id, element = found
                block_id = block_id or found_block_id
                value = element.get("value") if value is None else value
                button_text = (element.get("text") or {}).get("text", action_id)
        if value is None:
            raise ValueError(f"click: no value given and no button {action_id!r} to take it from")
        if is_ephemeral is None:
            is_ephemeral = bool(msg and msg.get("is_ephemeral"))
        if include_message is None:
            include_message = not is_ephemeral
        if response_url is None:
            response_url = self.new_response_url(channel_id=channel_id, user_id=user_id,
                                                 message_ts=message_ts)
        user_name, channel_name = self._names(user_id, channel_id, channel_name)
        payload = block_actions_payload(
            token=VERIFICATION_TOKEN, team_id=self.team_id, team_domain=self.team_domain,
            api_app_id=self.app_id, user_id=user_id, user_name=user_name,
            channel_id=channel_id, channel_name=channel_name, action_id=action_id,
            block_id=block_id or "b", value=value, button_text=button_text,
            response_url=response_url, message_ts=message_ts,
            message=self.store.public(msg) if (msg is not None and include_message) else None,
            is_ephemeral=is_ephemeral, thread_ts=msg.get("thread_ts") if msg else None,
        )
        self.api.views.issue(payload["trigger_id"], user_id)
        return await self._deliver(app_url, block_actions_form(payload),
                                   response_url=response_url,
                                   headers_override=headers_override, timestamp=timestamp,
                                   signing_secret=signing_secret, http_timeout=http_timeout)

    # --- modals ----------------------------------------------------------------------
    def open_views(self, user_id: str) -> list[dict[str, Any]]:
        """The modals open for `user_id` (views.open'd, not yet closed), newest last."""
        return self.api.views.of_user(user_id)

    def close_view(self, user_id: str, view_id: str | None = None) -> None:
        """The user closes a modal (Cancel or ✕): it is gone, nothing is delivered
        (rollbot's modals do not ask for view_closed)."""
        view = self._view(user_id, view_id)
        self.api.views.open.pop(view["id"], None)

    def _view(self, user_id: str, view_id: str | None) -> dict[str, Any]:
        views = self.open_views(user_id)
        found = [v for v in views if view_id in (None, v["id"])]
        if not found:
            raise ValueError(f"no modal {view_id or ''} open for {user_id}")
        return found[-1]

    async def submit_view(self, app_url: str, *, user_id: str, values: dict[str, str],
                          view_id: str | None = None,
                          headers_override: dict[str, str | None] | None = None,
                          timestamp: int | None = None, signing_secret: str | None = None,
                          http_timeout: float = 10.0) -> DeliveryResult:
        """The user submits a modal: `values` maps an input's action_id to the text typed.
        A 200 ack within 3 s with no body (or response_action "clear") closes it;
        "errors" keeps it open (`result.view_errors`); "update" replaces it."""
        view = self._view(user_id, view_id)
        user_name, _ = self._names(user_id, "", None)
        payload = view_submission_payload(
            token=VERIFICATION_TOKEN, team_id=self.team_id, team_domain=self.team_domain,
            api_app_id=self.app_id, user_id=user_id, user_name=user_name,
            view={**view, "state": self.api.views.state_of(view, values)})
        self.api.views.issue(payload["trigger_id"], user_id)
        result = await self._deliver(app_url, block_actions_form(payload), response_url="",
                                     headers_override=headers_override, timestamp=timestamp,
                                     signing_secret=signing_secret, http_timeout=http_timeout)
        if result.acked_in_time:  # else Slack shows "trouble connecting", the view stays
            self.api.views.answered(view["id"], result)
        return result
