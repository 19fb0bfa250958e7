"""Persistence: Postgres (pool, migrations), Redis, and embedded servers for dev/tests.

Kept import-light on purpose: `bot.stores.embedded` must not drag in psycopg_pool
or redis, so only small pure helpers live here.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["describe_error", "redact_url"]

# key=value conninfo ("password=..."), and URL userinfo ("scheme://user:secret@host").
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by '***', safe to log."""
    if "://" not in url:
        return _PASSWORD_KV.sub(r"\1***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return _PASSWORD_KV.sub(r"\1***", url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal lost its brackets in .hostname
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def describe_error(exc: BaseException, limit: int = 200) -> str:
    """Short one-line reason for health checks: exception type + first line, no secrets."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _URL_USERINFO.sub(r"\1:***@", text)
    text = _PASSWORD_KV.sub(r"\1***", text)
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."
