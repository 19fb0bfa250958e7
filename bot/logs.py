"""Logging set-up: text for people, JSON lines in Cloud Logging's structured
format with LOG_FORMAT=json.

Secrets never reach logs: they are SecretStr in Settings and never interpolated
into messages, and as a second line of defence `RedactSecrets` (on the handler)
blanks anything shaped like a Slack token, Slack's response_url secrets, and
the values registered with `register_secret_values` (Runtime.start registers
the settings' secrets), in messages and in exception text alike.

Trace correlation: the /slack/events handler (bot/app.py) reads Cloud Run's
X-Cloud-Trace-Context (or W3C traceparent, see `trace_of`) into a context
variable; JSON lines logged while handling that request (and in tasks it starts)
carry ``logging.googleapis.com/trace``, so Cloud Logging groups them under the
request. It needs GOOGLE_CLOUD_PROJECT.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

REDACTED = "[redacted]"
# Registered values shorter than this are ignored: redacting them would mangle
# ordinary words, and real Slack secrets are far longer.
MIN_SECRET_LENGTH = 8

SEVERITIES = {
    logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
    logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL",
}


# ---- trace context ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str = ""
    sampled: bool = False


trace_context: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "rollbot_trace_context", default=None)

_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_trace_headers(
    cloud_trace: str | None, traceparent: str | None = None
) -> TraceContext | None:
    """X-Cloud-Trace-Context ("TRACE_ID/SPAN_ID;o=1") first, then traceparent."""
    if cloud_trace and (m := _CLOUD_TRACE.match(cloud_trace.strip())):
        span = format(int(m.group(2)), "016x") if m.group(2) else ""
        return TraceContext(m.group(1).lower(), span, m.group(3) == "1")
    if traceparent and (m := _TRACEPARENT.match(traceparent.strip().lower())):
        return TraceContext(m.group(1), m.group(2), bool(int(m.group(3), 16) & 1))
    return None


def trace_of(headers: Mapping[str, str]) -> TraceContext | None:
    """The trace a request's headers name (set it in `trace_context` while handling it)."""
    return parse_trace_headers(headers.get("X-Cloud-Trace-Context"), headers.get("traceparent"))


# ---- redaction ---------------------------------------------------------------

_TOKEN_PATTERNS = (
    # Bot, user, app-config, refresh, workspace and rotating (xoxe.xoxp-) tokens.
    (re.compile(r"\b(xox(?:e\.xox)?[abeprs])-[A-Za-z0-9-]+"), rf"\1-{REDACTED}"),
    (re.compile(r"\b(xapp)-[A-Za-z0-9-]+"), rf"\1-{REDACTED}"),
    # response_url and incoming-webhook URLs authorize whoever holds them.
    (re.compile(r"(https://hooks\.slack\.com/(?:commands|actions|services|triggers))/\S+"),
     rf"\1/{REDACTED}"),
)
_env_patterns: tuple[tuple[re.Pattern[str], str], ...] = ()


def _name_regex(glob: str) -> str:
    """A glob on an env var name as a regex matching one whole name."""
    parts = {"*": "[A-Za-z0-9_]*", "?": "[A-Za-z0-9_]"}
    return "".join(parts.get(char, re.escape(char)) for char in glob)


def register_secret_env_patterns(globs: Iterable[str]) -> None:
    """Redact the values of env vars whose names match these globs (the catalog's
    `[masking] secret_env_patterns`) wherever a line shows one: as typed
    (`API_KEY=value`) or as a change request's arguments (`'key': 'API_KEY', 'value': …`)."""
    global _env_patterns
    names = "|".join(_name_regex(glob) for glob in globs)
    if not names:
        _env_patterns = ()
        return
    name = rf"(?:{names})"
    _env_patterns = (
        (re.compile(rf"\b({name})=[^\s\"',}}]+", re.IGNORECASE), rf"\1={REDACTED}"),
        (re.compile(rf"""(['"]key['"]:\s*['"]{name}['"],\s*['"]value['"]:\s*)(['"])"""
                    rf"""(?:(?!\2).)*\2""", re.IGNORECASE), rf"\1'{REDACTED}'"),
    )
_secret_values: tuple[str, ...] = ()
_secret_pattern: re.Pattern[str] | None = None


def register_secret_values(*values: str) -> None:
    """Redact these exact values (e.g. the signing secret) from every log line."""
    global _secret_values, _secret_pattern
    new = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
    merged = tuple(sorted(set(_secret_values) | new, key=len, reverse=True))
    if merged != _secret_values:
        _secret_values = merged
        _secret_pattern = re.compile("|".join(re.escape(v) for v in merged))


def url_passwords(*urls: str) -> tuple[str, ...]:
    """Passwords in URLs such as DATABASE_URL and REDIS_URL (or libpq key=value
    DSNs), as written and percent-decoded, for `register_secret_values`."""
    found: list[str] = []
    for url in urls:
        if "://" in url:
            try:
                password = urlsplit(url).password or ""
            except ValueError:
                password = ""
        else:
            m = re.search(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url)
            password = m.group(1).strip("'") if m else ""
        if password:
            found += [password, unquote(password)]
    return tuple(found)


def redact(text: str) -> str:
    if _secret_pattern is not None:
        text = _secret_pattern.sub(REDACTED, text)
    for pattern, replacement in (*_TOKEN_PATTERNS, *_env_patterns):
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrite the record's message and exception text with secrets blanked.

    Put it on handlers (a logger's filters do not see records from its children).
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string; let the handler report it
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# ---- formatting ----------------------------------------------------------------

def rfc3339(created: float) -> str:
    stamp = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line, in the shape Cloud Logging's agent parses.

    `extra={"json_fields": {...}}` adds fields to the entry.
    """

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            # Error Reporting finds stack traces at the end of `message`.
            message = f"{message}\n{record.exc_text}" if message else record.exc_text
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        entry: dict[str, Any] = {
            "severity": SEVERITIES.get(record.levelno, "DEFAULT"),
            "message": message,
            "time": rfc3339(record.created),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname, "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        project = self.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        trace = trace_context.get()
        if trace is not None and project:
            entry["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace.trace_id}"
            if trace.span_id:
                entry["logging.googleapis.com/spanId"] = trace.span_id
            entry["logging.googleapis.com/trace_sampled"] = trace.sampled
        extra = getattr(record, "json_fields", None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                entry.setdefault(str(key), value)
        return json.dumps(entry, default=str)


def setup_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(CloudLoggingFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    # Client libraries are chatty at INFO and may echo request details.
    for noisy in ("slack_bolt", "slack_sdk", "procrastinate", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
