"""Feature flags in the *application's* stores, behind one small interface:

- `DatabaseFlags`: its flags table (psycopg), one transaction per change with a
  statement timeout: the row locked, the old value read, then
  `UPDATE … SET enabled = %s, updated_at = now() WHERE name = %s RETURNING enabled`;
- `ApiFlags`: its admin API (aiohttp): `GET {base}/admin/feature-flags` (a JSON array
  of {"name", "enabled"}), `GET`/`PATCH {base}/admin/feature-flags/{name}`, the key in
  the header the catalog names; at most 3 attempts within 10 s on 5xx and connection
  errors (tenacity), never a retry on a 4xx, whose status and message are quoted.

A store that cannot be reached raises `FlagStoreError`: the caller says nothing changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import psycopg
from psycopg import sql
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

TIMEOUT_SECONDS = 5.0
API_ATTEMPTS, API_WITHIN_SECONDS = 3, 10.0


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    enabled: bool
    updated_at: dt.datetime | None = None


class FlagStoreError(Exception):
    """The flag store refused or could not be reached; `status`: an API's HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class FlagStore(Protocol):
    async def list(self) -> list[Flag]: ...

    async def get(self, name: str) -> Flag | None: ...

    async def set(self, name: str, enabled: bool) -> tuple[Flag, Flag]:
        """(before, after) for an existing flag; FlagStoreError if there is none."""
        ...


def _identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))  # "app.feature_flags" -> "app"."feature_flags"


@dataclasses.dataclass(frozen=True)
class DatabaseFlags:
    url: str
    table: str = "feature_flags"
    name_column: str = "name"
    enabled_column: str = "enabled"
    updated_at_column: str | None = "updated_at"

    def _select(self) -> sql.Composed:
        updated = (_identifier(self.updated_at_column) if self.updated_at_column
                   else sql.SQL("NULL::timestamptz"))
        return sql.SQL("SELECT {}, {}, {} FROM {}").format(
            _identifier(self.name_column), _identifier(self.enabled_column), updated,
            _identifier(self.table))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=int(TIMEOUT_SECONDS))
            await conn.execute(f"SET statement_timeout = {int(TIMEOUT_SECONDS * 1000)}")
            return conn
        except psycopg.Error as exc:
            raise FlagStoreError(f"the flags database is unreachable: {_first(exc)}") from exc

    async def list(self) -> list[Flag]:
        async with await self._connect() as conn:
            try:
                rows = await (await conn.execute(
                    self._select() + sql.SQL(" ORDER BY 1"))).fetchall()
            except psycopg.Error as exc:
                raise FlagStoreError(f"reading {self.table} failed: {_first(exc)}") from exc
        return [Flag(str(r[0]), bool(r[1]), r[2]) for r in rows]

    async def get(self, name: str) -> Flag | None:
        async with await self._connect() as conn:
            try:
                row = await (await conn.execute(self._select() + sql.SQL(" WHERE {} = %s").format(
                    _identifier(self.name_column)), (name,))).fetchone()
            except psycopg.Error as exc:
                raise FlagStoreError(f"reading {self.table} failed: {_first(exc)}") from exc
        return None if row is None else Flag(str(row[0]), bool(row[1]), row[2])

    async def set(self, name: str, enabled: bool) -> tuple[Flag, Flag]:
        stamp = (sql.SQL(", {} = now()").format(_identifier(self.updated_at_column))
                 if self.updated_at_column else sql.SQL(""))
        update = sql.SQL("UPDATE {} SET {} = %s{} WHERE {} = %s RETURNING {}").format(
            _identifier(self.table), _identifier(self.enabled_column), stamp,
            _identifier(self.name_column), _identifier(self.enabled_column))
        lock = self._select() + sql.SQL(" WHERE {} = %s FOR UPDATE").format(
            _identifier(self.name_column))
        async with await self._connect() as conn:
            try:
                async with conn.transaction():
                    row = await (await conn.execute(lock, (name,))).fetchone()
                    if row is None:
                        raise FlagStoreError(f"no flag {name!r} in {self.table}")
                    after = await (await conn.execute(update, (enabled, name))).fetchone()
            except psycopg.Error as exc:
                raise FlagStoreError(f"updating {self.table} failed: {_first(exc)}") from exc
        assert after is not None
        return Flag(name, bool(row[1]), row[2]), Flag(name, bool(after[0]))


class _Transient(Exception):
    """A 5xx or a connection error: worth another attempt."""


@dataclasses.dataclass
class ApiFlags:
    base_url: str
    api_key: str | None
    header: str = "X-Api-Key"
    session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = self.base_url.rstrip("/") + "/admin/feature-flags" + path
        headers = {self.header: self.api_key} if self.api_key else {}
        try:
            async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(API_ATTEMPTS) | stop_after_delay(API_WITHIN_SECONDS),
                    wait=wait_exponential(multiplier=0.25, max=2.0),
                    retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
                    reraise=True):
                with attempt:
                    return await self._once(method, url, headers, body)
        except _Transient as exc:
            raise FlagStoreError(f"the flags API is unreachable: {exc}") from exc
        raise AssertionError("unreachable: tenacity returns or reraises")

    async def _once(self, method: str, url: str, headers: dict[str, str], body: Any) -> Any:
        session = self.session or aiohttp.ClientSession()
        try:
            async with session.request(method, url, json=body, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
                                       ) as resp:
                text = await resp.text()
                if resp.status >= 500:
                    raise _Transient(f"HTTP {resp.status}: {text[:200]}")
                if resp.status >= 400:
                    raise FlagStoreError(f"the flags API answered HTTP {resp.status}: "
                                         f"{_message(text)}", status=resp.status)
                return await resp.json(content_type=None) if text else None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise _Transient(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        finally:
            if self.session is None:
                await session.close()

    async def list(self) -> list[Flag]:
        found = await self._call("GET", "")
        if not isinstance(found, list):
            raise FlagStoreError("the flags API did not answer a JSON array")
        return [Flag(str(f["name"]), bool(f["enabled"])) for f in found
                if isinstance(f, dict) and "name" in f and "enabled" in f]

    async def get(self, name: str) -> Flag | None:
        try:
            found = await self._call("GET", "/" + quote(name, safe=""))
        except FlagStoreError as exc:
            if exc.status == 404:
                return None
            raise
        return Flag(name, bool(found["enabled"])) if isinstance(found, dict) else None

    async def set(self, name: str, enabled: bool) -> tuple[Flag, Flag]:
        before = await self.get(name)
        if before is None:
            raise FlagStoreError(f"no flag {name!r} behind the flags API", status=404)
        await self._call("PATCH", "/" + quote(name, safe=""), {"enabled": enabled})
        after = await self.get(name)  # read back, not assumed
        if after is None:
            raise FlagStoreError(f"flag {name!r} vanished after the change")
        return before, after


def _first(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0][:200] or type(exc).__name__


def _message(text: str) -> str:
    """An API error's message: its JSON "message"/"error", else the body, short."""
    try:
        body = json.loads(text)
        if isinstance(body, dict):
            return str(body.get("message") or body.get("error") or text)[:300]
    except ValueError:
        pass
    return text[:300] or "(no message)"
