"""Posting to Slack: the Web API client and response_url posts, with Slack's
own retry handlers for rate limits (429 + Retry-After), 5xx and connection errors.

Slack allows about one message per second per channel, so `post` paces
chat.postMessage per channel (waits, never drops; posts to one channel go out in call
order), and `update` coalesces chat.update per message: while an update of a message
is in flight, newer contents for it wait, and only the latest of them is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
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


DEFAULT_POST_INTERVAL = 1.0  # seconds between chat.postMessage calls to one channel
# Slack allows "1 per second per channel, short bursts above that": a token bucket
# lets a rollback's first few lines out at once and paces the rest.
DEFAULT_POST_BURST = 6
_MAX_IDLE_PACERS = 256  # forget idle channels beyond this many
_MAX_PERMALINKS = 1024  # messages whose permalink is remembered


@dataclasses.dataclass
class _Pacer:
    """One channel's posting turn: the lock is FIFO, so posts keep their call order."""

    tokens: float
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    last: float = float("-inf")  # monotonic time the bucket was last refilled
    users: int = 0


@dataclasses.dataclass
class _Updates:
    """One message's pending updates: `latest` is the newest content asked for."""

    latest: Message
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    asked: int = 0  # sequence number of `latest`
    sent: int = 0  # highest sequence number whose content (or a newer one) is in Slack
    users: int = 0


class SlackOut:
    """Everything rollbot says in Slack goes through here.

    One HTTP session for every call (Web API and response_url posts): without
    it slack_sdk opens a new connection, and a TLS handshake, per call.
    `min_interval`: seconds between posts to one channel (tests pass less)."""

    def __init__(self, client: AsyncWebClient, session: aiohttp.ClientSession | None = None,
                 *, min_interval: float = DEFAULT_POST_INTERVAL,
                 burst: int = DEFAULT_POST_BURST) -> None:
        if min_interval < 0 or burst < 1:
            raise ValueError("min_interval must be >= 0 and burst >= 1")
        self.burst = burst
        self.client = client
        self._session = session
        self.min_interval = min_interval
        self._pacers: dict[str, _Pacer] = {}
        self._updates: dict[tuple[str, str], _Updates] = {}
        self._permalinks: dict[tuple[str, str], str] = {}

    @classmethod
    def connect(cls, token: str, base_url: str, *,
                min_interval: float = DEFAULT_POST_INTERVAL,
                burst: int = DEFAULT_POST_BURST) -> SlackOut:
        """Must be called in the running event loop (it opens the shared session)."""
        session = aiohttp.ClientSession()
        return cls(make_web_client(token, base_url, session), session,
                   min_interval=min_interval, burst=burst)

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
        """chat.postMessage, paced per channel: `burst` at once, then one per
        `min_interval` (waits its turn, never drops)."""
        async with self._turn(channel):
            result = await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, **message.as_kwargs())
        return str(result["ts"])

    @contextlib.asynccontextmanager
    async def _turn(self, channel: str) -> AsyncIterator[None]:
        """The channel's next posting turn (FIFO), its token taken."""
        pacer = self._pacer(channel)
        pacer.users += 1
        try:
            async with pacer.lock:
                self._refill(pacer)
                if pacer.tokens < 1:
                    await asyncio.sleep((1 - pacer.tokens) * self.min_interval)
                    self._refill(pacer)
                # Taken before the call: a failed post may still have reached Slack.
                pacer.tokens = max(0.0, pacer.tokens - 1)
                yield
        finally:
            pacer.users -= 1

    def _refill(self, pacer: _Pacer) -> None:
        now = time.monotonic()
        if self.min_interval <= 0:
            pacer.tokens = float(self.burst)
        elif pacer.last != float("-inf"):
            pacer.tokens = min(float(self.burst),
                               pacer.tokens + (now - pacer.last) / self.min_interval)
        pacer.last = now

    def _pacer(self, channel: str) -> _Pacer:
        pacer = self._pacers.get(channel)
        if pacer is None:
            if len(self._pacers) >= _MAX_IDLE_PACERS:
                horizon = time.monotonic() - self.min_interval
                for key, old in list(self._pacers.items()):
                    if old.users == 0 and old.last <= horizon:
                        del self._pacers[key]
            pacer = self._pacers[channel] = _Pacer(tokens=float(self.burst))
        return pacer

    async def upload_file(self, channel: str, thread_ts: str | None, filename: str,
                          content: bytes, *, title: str, comment: str | None = None) -> None:
        """A file into the channel (or thread): `files_upload_v2`, i.e. an upload URL,
        the bytes, then files.completeUploadExternal. Paced with the channel's posts
        (sharing it posts a message); a failure raises SlackApiError or
        SlackRequestError, like `post`."""
        async with self._turn(channel):
            await self.client.files_upload_v2(
                channel=channel, thread_ts=thread_ts, filename=filename, content=content,
                title=title, initial_comment=comment)

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A message's permalink, or None if Slack won't give one. Asked once per
        message: it never changes, and every refusal pointing at a busy service's
        plan card would otherwise ask again."""
        key = (channel, ts)
        cached = self._permalinks.get(key)
        if cached is not None:
            return cached
        try:
            result = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError:
            return None  # not remembered: it may work next time
        link = result.get("permalink")
        if not link:
            return None
        if len(self._permalinks) >= _MAX_PERMALINKS:
            del self._permalinks[next(iter(self._permalinks))]  # the oldest
        self._permalinks[key] = str(link)
        return str(link)

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """chat.update, coalesced per message: returns once this content, or a newer one
        asked for since, is in Slack. The last content asked for is always sent last."""
        key = (channel, ts)
        state = self._updates.get(key)
        if state is None:
            state = self._updates[key] = _Updates(latest=message)
        state.asked += 1
        mine = state.asked
        state.latest = message
        state.users += 1
        try:
            async with state.lock:  # FIFO: one update of this message in flight at a time
                if state.sent >= mine:
                    return  # superseded: a newer content went out while we waited
                content, upto = state.latest, state.asked
                await self.client.chat_update(channel=channel, ts=ts, **content.as_kwargs())
                state.sent = upto
        finally:
            state.users -= 1
            if state.users == 0 and self._updates.get(key) is state:
                del self._updates[key]
