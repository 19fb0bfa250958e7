"""HTTP checks of a target service: /health, /ready (with its dependency checks),
smoke URLs (with an expected status and JSON fields). Returns an `HttpCheckOutcome`
(the core makes it a check result); never builds Slack messages.

One check is one GET: no retries (the verifier polls), no redirects followed (a 3xx
is reported, not chased to another host), at most 64 KiB of body read, and network
failures come back as a failed outcome, never as an exception.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 160

JsonExpectation = str | int | bool  # an expected JSON field value (smoke_urls.expect_json)


@dataclasses.dataclass(frozen=True)
class HttpCheckOutcome:
    """What one GET found."""

    ok: bool
    status: int | None  # HTTP status, None when no answer
    detail: str  # short, human: "200 healthy", "503 unhealthy", "timeout after 5s"
    elapsed_ms: float
    dependencies: dict[str, str] = dataclasses.field(default_factory=dict)  # /ready "checks"


def _short(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _text(value: Any) -> str:
    """A JSON value as short text: strings as-is, {"status"|"message": …} unwrapped."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("status", "message", "error"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return json.dumps(value, separators=(",", ":"), default=str)


def _dependencies(body: Any) -> dict[str, str]:
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict):
        return {}
    return {str(key): _short(_text(value), 80) for key, value in checks.items()}


def _failing(dependencies: dict[str, str]) -> str:
    bad = [f"{k}={v}" for k, v in dependencies.items() if v.lower() not in ("ok", "healthy", "up")]
    return ", ".join(bad)


def _parse_json(raw: bytes) -> Any:
    if raw.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


async def _read_limited(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """Up to MAX_BODY_BYTES of body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = await response.content.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    raw = b"".join(chunks)
    return raw[:MAX_BODY_BYTES], size > MAX_BODY_BYTES


def _lookup(body: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of a field: "status", or a dotted path like "checks.database"
    (a key that itself contains the dots is preferred when present)."""
    if isinstance(body, dict) and path in body:
        return True, body[path]
    value = body
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _matches(actual: Any, expected: JsonExpectation) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):  # True is not 1
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, int):
        return isinstance(actual, int | float) and actual == expected
    return isinstance(actual, str) and actual == expected


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _json_mismatches(body: Any, expect_json: Mapping[str, JsonExpectation]) -> list[str]:
    """One short line per expected field that is missing or different."""
    if not isinstance(body, dict):
        return ["no JSON object in the body (fields not checked)"]
    out: list[str] = []
    for path, expected in expect_json.items():
        found, actual = _lookup(body, path)
        if not found:
            out.append(f"{path} missing (expected {_shown(expected)})")
        elif not _matches(actual, expected):
            if isinstance(actual, str) and isinstance(expected, str):
                shown_actual, shown_expected = actual, expected
            else:  # different types: show both as JSON, so 1 and "1" differ
                shown_actual = json.dumps(actual, default=str)
                shown_expected = json.dumps(expected)
            out.append(f"{path} = {_short(shown_actual, 40)} (expected {shown_expected})")
    return out


def _verdict(status: int, reason: str, raw: bytes, truncated: bool, location: str | None,
             expect_json_status: str | None, expect_status: int | None = None,
             expect_json: Mapping[str, JsonExpectation] | None = None,
             ) -> tuple[bool, str, dict[str, str]]:
    """(ok, detail, dependencies) for one HTTP answer."""
    status_ok = status == expect_status if expect_status is not None else 200 <= status < 300
    expected = f"expected status {expect_status}, got " if expect_status is not None else ""
    if 300 <= status < 400 and not status_ok:
        target = f" to {location}" if location else ""
        return False, f"{expected}{status} redirect{target} (not followed)", {}
    body_checked = expect_json_status is not None or bool(expect_json)
    if truncated:
        if status_ok and body_checked:
            return False, f"{status} but body over 64 KiB (fields not checked)", {}
        prefix = expected if not status_ok else ""
        return status_ok, f"{prefix}{status} {reason} (body over 64 KiB, not read)".replace(
            "  ", " "), {}
    body = _parse_json(raw)
    dependencies = _dependencies(body)
    json_status = body.get("status") if isinstance(body, dict) else None
    label = _text(json_status) if json_status is not None else reason
    if status_ok:
        if expect_json_status is not None and json_status is not None \
                and _text(json_status) != expect_json_status:
            return False, f"{status} but status={_text(json_status)}", dependencies
        if expect_json:
            mismatches = _json_mismatches(body, expect_json)
            if mismatches:
                return False, f"{status} but " + "; ".join(mismatches), dependencies
        return True, f"{status} {label}".rstrip(), dependencies
    why = ""
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key) not in (None, ""):
                why = _text(body[key])
                break
        if not why:
            why = _failing(dependencies)
    elif raw and not body:
        why = raw[:200].decode("utf-8", "replace").strip()
    if expect_status is not None:
        detail = f"expected status {expect_status}, got {status}"
    else:
        detail = f"{status} {label}".rstrip()
    return False, detail + (f": {why}" if why else ""), dependencies


def network_failure(exc: BaseException, timeout: float) -> str:
    """A short reason for a request that got no (complete) answer."""
    if isinstance(exc, TimeoutError):  # includes aiohttp's ServerTimeoutError
        return f"timeout after {_seconds(timeout)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return f"DNS lookup failed for {exc.host}"
        if os_error.errno == errno.ECONNREFUSED or isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {os_error.strerror or os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "incomplete response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: {exc.message}"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"request failed: {type(exc).__name__}"


class HttpChecker:
    """GETs one URL per check. Owns (and closes) its session unless one is given."""

    def __init__(self, session: aiohttp.ClientSession | None = None, *,
                 user_agent: str = "rollbot/0.1") -> None:
        self._session = session
        self._owns_session = session is None
        self.user_agent = user_agent

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or (self._session.closed and self._owns_session):
            self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> HttpChecker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def check(self, name: str, url: str, *, timeout: float,  # noqa: ASYNC109
                    expect_json_status: str | None = None,
                    expect_status: int | None = None,
                    expect_json: Mapping[str, JsonExpectation] | None = None,
                    ) -> HttpCheckOutcome:
        """GET `url` once (`name` says which check, for the log). Passes on HTTP 2xx,
        or exactly `expect_status` when given; with `expect_json`, each field (dotted
        path for nesting) must equal its value."""
        started = time.perf_counter()

        def result(ok: bool, status: int | None, detail: str,
                   dependencies: dict[str, str] | None = None) -> HttpCheckOutcome:
            return HttpCheckOutcome(
                ok=ok, status=status, detail=_short(detail),
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
                dependencies=dependencies or {},
            )

        try:
            async with self._client().get(
                url,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
                headers={"User-Agent": self.user_agent, "Accept": "application/json, */*"},
            ) as response:
                raw, truncated = await _read_limited(response)
                ok, detail, dependencies = _verdict(
                    response.status, response.reason or "", raw, truncated,
                    response.headers.get("Location"), expect_json_status,
                    expect_status, expect_json,
                )
                return result(ok, response.status, detail, dependencies)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return result(False, None, network_failure(exc, timeout))
        except Exception as exc:  # a check reports; it never takes the verifier down
            log.exception("HTTP check %s of %s failed unexpectedly", name, url)
            return result(False, None, f"check error: {type(exc).__name__}")
