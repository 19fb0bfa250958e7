"""Redis client, health check, and the de-duplicator for Slack retries / double clicks."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from bot.stores import describe_error, redact_url

__all__ = ["Deduplicator", "check_redis", "open_redis"]

log = logging.getLogger(__name__)


async def open_redis(url: str, *, wait_seconds: float = 5.0) -> aioredis.Redis:
    """A connected client (PINGed once). Responses are decoded to str."""
    client = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=wait_seconds,
        socket_timeout=wait_seconds,
        # Re-check idle connections so a Redis restart costs a reconnect, not an error.
        health_check_interval=30,
        # A few quick retries ride out a failover/restart without stalling a request.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
    )
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        reason = describe_error(exc)
        raise RuntimeError(f"redis {redact_url(url)} not reachable: {reason}") from None
    log.info("redis connected: %s", redact_url(url))
    return client


async def check_redis(client: aioredis.Redis, wait_seconds: float = 3.0) -> str:
    """'ok', or 'error: <short reason>' (no URLs, no secrets) for health endpoints."""
    try:
        async with asyncio.timeout(wait_seconds):
            await client.ping()
    except TimeoutError:
        return f"error: no answer within {wait_seconds:g}s"
    except Exception as exc:
        return f"error: {describe_error(exc)}"
    return "ok"


class Deduplicator:
    """Remembers keys for a while so that only the first delivery of an event is acted on.

    Slack retries events it thinks we missed and users double-click buttons; both
    arrive as separate requests, possibly on different replicas, hence Redis.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "rollbot:dedupe:") -> None:
        self._client = client
        self._prefix = prefix

    async def first_time(self, key: str, ttl_seconds: int = 600) -> bool:
        """True only for the first caller with `key` within `ttl_seconds` (atomic SET NX EX)."""
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be >= 1")
        created = await self._client.set(self._prefix + key, "1", nx=True, ex=ttl_seconds)
        return bool(created)
