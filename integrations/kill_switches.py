"""Kill switches in the *application's* Redis: `kill_switch:<name>` keys.

On means the key exists with a value other than "false" or "0"; on is `SET … "true"`,
off is `DEL`, and every change is read back with GET. Listing uses SCAN (never KEYS,
which blocks a production Redis while it walks every key).
"""

from __future__ import annotations

import dataclasses

from redis.asyncio import Redis
from redis.exceptions import RedisError

PREFIX = "kill_switch:"
SCAN_COUNT = 500
TIMEOUT_SECONDS = 5.0


class SwitchStoreError(Exception):
    """The application's Redis could not be reached or refused: nothing was changed."""


@dataclasses.dataclass(frozen=True)
class SwitchState:
    name: str
    raw: str | None  # the key's value, None when it does not exist

    @property
    def on(self) -> bool:
        return self.raw is not None and self.raw.strip().lower() not in ("false", "0")


class KillSwitches:
    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS)

    async def close(self) -> None:
        await self._redis.aclose()

    async def get(self, name: str) -> SwitchState:
        try:
            return SwitchState(name, _text(await self._redis.get(PREFIX + name)))
        except (RedisError, OSError) as exc:
            raise SwitchStoreError(_why(exc)) from exc

    async def scan(self) -> list[SwitchState]:
        """Every kill_switch:* key, with its value (SCAN, in batches)."""
        try:
            names = sorted({key.removeprefix(PREFIX) async for key in self._redis.scan_iter(
                match=PREFIX + "*", count=SCAN_COUNT)})
            values = await self._redis.mget([PREFIX + n for n in names]) if names else []
        except (RedisError, OSError) as exc:
            raise SwitchStoreError(_why(exc)) from exc
        return [SwitchState(n, _text(v)) for n, v in zip(names, values, strict=True)]

    async def set(self, name: str, on: bool) -> SwitchState:
        """Pull (on) or release (off) the switch, then read it back."""
        try:
            if on:
                await self._redis.set(PREFIX + name, "true")
            else:
                await self._redis.delete(PREFIX + name)
            return SwitchState(name, _text(await self._redis.get(PREFIX + name)))
        except (RedisError, OSError) as exc:
            raise SwitchStoreError(_why(exc)) from exc


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _why(exc: BaseException) -> str:
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
