"""Delivering slash commands and button clicks to an app, signed as Slack signs them.

Slack signs `v0:{timestamp}:{raw body}` with HMAC-SHA256 under the app's signing
secret and sends the result as `X-Slack-Signature: v0=<hex>` alongside
`X-Slack-Request-Timestamp`; apps must also reject timestamps older than 5 minutes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
# Slack shows "operation_timeout" to the user when an app does not ack within 3 s.
ACK_DEADLINE_SECONDS = 3.0


@dataclasses.dataclass
class DeliveryResult:
    status: int
    body: str
    elapsed: float  # seconds until the app answered
    response_url: str
    request_body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # A slash command's ack body is shown by Slack as a message; this is its ts.
    message_ts: str | None = None
    # time.monotonic() just before the POST, after the payload was built and signed:
    # where a benchmark of the app's own time starts its clock.
    sent_at: float = 0.0
    # A view_submission answered with response_action "errors": block id -> message
    # (the modal stays open, showing them under its inputs).
    view_errors: dict[str, str] | None = None

    @property
    def acked_in_time(self) -> bool:
        return self.status == 200 and self.elapsed < ACK_DEADLINE_SECONDS

    def json(self) -> Any:
        """The app's ack body parsed as JSON (None when the body is empty)."""
        return json.loads(self.body) if self.body.strip() else None


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(ts)}


def trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def command_form(*, token: str, team_id: str, team_domain: str, channel_id: str,
                 channel_name: str, user_id: str, user_name: str, command: str, text: str,
                 api_app_id: str, response_url: str) -> bytes:
    """The form body Slack posts for a slash command, field order as Slack sends it."""
    fields = [
        ("token", token), ("team_id", team_id), ("team_domain", team_domain),
        ("channel_id", channel_id), ("channel_name", channel_name), ("user_id", user_id),
        ("user_name", user_name), ("command", command), ("text", text),
        ("api_app_id", api_app_id), ("is_enterprise_install", "false"),
        ("response_url", response_url), ("trigger_id", trigger_id()),
    ]
    return urlencode(fields).encode()


def block_actions_payload(*, token: str, team_id: str, team_domain: str, api_app_id: str,
                          user_id: str, user_name: str, channel_id: str, channel_name: str,
                          action_id: str, block_id: str, value: str, button_text: str,
                          response_url: str, message_ts: str | None,
                          message: dict[str, Any] | None, is_ephemeral: bool,
                          thread_ts: str | None = None) -> dict[str, Any]:
    action_ts = f"{time.time():.6f}"
    container: dict[str, Any] = {"type": "message", "message_ts": message_ts or action_ts,
                                 "channel_id": channel_id, "is_ephemeral": is_ephemeral}
    if thread_ts:
        container["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": container,
        "trigger_id": trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{
            "action_id": action_id, "block_id": block_id,
            "text": {"type": "plain_text", "text": button_text, "emoji": True},
            "value": value, "type": "button", "action_ts": action_ts,
        }],
    }
    if message is not None:
        payload["message"] = message
    return payload


def view_submission_payload(*, token: str, team_id: str, team_domain: str, api_app_id: str,
                            user_id: str, user_name: str,
                            view: dict[str, Any]) -> dict[str, Any]:
    """A modal's submission as Slack POSTs it (form field `payload`, like a click)."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id, "token": token, "trigger_id": trigger_id(),
        "view": view, "response_urls": [], "is_enterprise_install": False,
        "enterprise": None,
    }


def block_actions_form(payload: dict[str, Any]) -> bytes:
    # Interactions arrive as a form with a single `payload` field holding JSON.
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


async def deliver(url: str, body: bytes, headers: dict[str, str], *, response_url: str,
                  http_timeout: float = 10.0,
                  session: aiohttp.ClientSession | None = None) -> DeliveryResult:
    """POST one signed delivery; over `session`'s kept-alive connections if given
    (a new connection per delivery would add its set-up to every measured click)."""
    sent_at, started = time.monotonic(), time.perf_counter()
    client_timeout = aiohttp.ClientTimeout(total=http_timeout)
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        resp = await stack.enter_async_context(
            session.post(url, data=body, headers=headers, timeout=client_timeout))
        text = await resp.text()
        return DeliveryResult(
            status=resp.status, body=text, elapsed=time.perf_counter() - started,
            response_url=response_url, request_body=body, headers=dict(resp.headers),
            sent_at=sent_at,
        )


def delivery_headers(signed: dict[str, str],
                     override: dict[str, str | None] | None) -> dict[str, str]:
    """Slack's request headers; an override value of None drops that header."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT,
               **signed}
    for key, value in (override or {}).items():
        for existing in [k for k in headers if k.lower() == key.lower()]:
            del headers[existing]
        if value is not None:
            headers[key] = value
    return headers
