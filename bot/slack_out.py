"""Posting to Slack: the Web API client and response_url posts, with Slack's
own retry handlers for rate limits (429 + Retry-After), 5xx and connection errors."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.messages.base import Message


def retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncServerErrorRetryHandler(max_retry_count=3),
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
    ]


def make_web_client(token: str, base_url: str,
                    session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=base_url, retry_handlers=retry_handlers(),
                          session=session)


class SlackOut:
    """Everything rollbot says in Slack goes through here.

    One HTTP session for every call (Web API and response_url posts): without
    it slack_sdk opens a new connection, and a TLS handshake, per call."""

    def __init__(self, client: AsyncWebClient, session: aiohttp.ClientSession | None = None
                 ) -> None:
        self.client = client
        self._session = session

    @classmethod
    def connect(cls, token: str, base_url: str) -> SlackOut:
        """Must be called in the running event loop (it opens the shared session)."""
        session = aiohttp.ClientSession()
        return cls(make_web_client(token, base_url, session), session)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def respond(
        self, response_url: str, message: Message, *, ephemeral: bool = True,
        replace_original: bool = False,
    ) -> None:
        webhook = AsyncWebhookClient(response_url, retry_handlers=retry_handlers(),
                                     session=self._session)
        body: dict[str, Any] = {
            "response_type": "ephemeral" if ephemeral else "in_channel",
            "replace_original": replace_original,
            **message.as_kwargs(),
        }
        response = await webhook.send_dict(body)
        if response.status_code >= 400:
            raise RuntimeError(f"response_url post failed with HTTP {response.status_code}")

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> str:
        result = await self.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, **message.as_kwargs())
        return str(result["ts"])

    async def post_ephemeral(self, channel: str, user: str, message: Message) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, **message.as_kwargs())

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self.client.chat_update(channel=channel, ts=ts, **message.as_kwargs())
