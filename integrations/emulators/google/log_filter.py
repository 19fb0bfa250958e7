"""A subset of the Cloud Logging query language, parsed strictly.

Supported: comparisons joined by ``AND`` (or just whitespace, an implicit AND):
``resource.type``, ``resource.labels.{service_name,revision_name,configuration_name,
location,project_id}``, ``logName`` and ``textPayload`` with ``=``, ``!=`` and ``:`` (has,
a case-insensitive substring match); ``severity`` and ``timestamp`` with
``= != < <= > >=``. Values are quoted ("...") or bare words.

Anything else (OR, NOT, parentheses, other fields, free text) raises
FilterError naming the term: the emulator must not quietly return a superset
for a query Google would read differently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable

from ..world import SEVERITY_ORDER, EmuLogEntry

STDERR_LOG = "run.googleapis.com%2Fstderr"

_TERM_RE = re.compile(
    r'(?P<field>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>>=|<=|!=|=|>|<|:)\s*'
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^\s()"]+)'
)
_AND_RE = re.compile(r"AND(?=\s|$)")
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")

_STRING_OPS = frozenset({"=", "!=", ":"})
_ORDERED_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_STRING_FIELDS = frozenset({
    "resource.type", "resource.labels.service_name", "resource.labels.revision_name",
    "resource.labels.configuration_name", "resource.labels.location",
    "resource.labels.project_id", "logName", "textPayload",
})


class FilterError(ValueError):
    """The filter uses syntax or fields the emulator does not support."""


@dataclasses.dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: str | int | dt.datetime  # severity rank for "severity", datetime for "timestamp"
    raw: str  # the term as written, for error messages and debugging


@dataclasses.dataclass(frozen=True)
class LogFilter:
    comparisons: tuple[Comparison, ...]

    def matches(self, entry: EmuLogEntry, *, project: str, location: str) -> bool:
        return all(_matches(c, entry, project, location) for c in self.comparisons)


def parse_filter(text: str) -> LogFilter:
    """Parse ``text``; raise FilterError for anything outside the supported subset."""
    comparisons: list[Comparison] = []
    pos = 0
    after_and = False
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        if _AND_RE.match(text, pos):
            if not comparisons or after_and:
                raise FilterError(f"misplaced AND at position {pos} in filter {text!r}")
            after_and = True
            pos += 3
            continue
        match = _TERM_RE.match(text, pos)
        end = match.end() if match else pos
        if match is None or (end < len(text) and not text[end].isspace()):
            chunk = text[pos:].split(None, 1)[0]
            raise FilterError(f"unsupported filter term {chunk!r} "
                              "(supported: field OP value terms joined by AND)")
        comparisons.append(_comparison(match.group("field"), match.group("op"),
                                       match.group("value"), match.group(0)))
        after_and = False
        pos = end
    if after_and:
        raise FilterError(f"filter ends with AND: {text!r}")
    return LogFilter(tuple(comparisons))


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _comparison(field: str, op: str, value: str, raw: str) -> Comparison:
    text = _unquote(value)
    if field in _STRING_FIELDS:
        if op not in _STRING_OPS:
            raise FilterError(f"operator {op!r} is not supported for {field} in term {raw!r}")
        return Comparison(field, op, text, raw)
    if op not in _ORDERED_OPS:
        raise FilterError(f"operator {op!r} is not supported for {field} in term {raw!r}")
    if field == "severity":
        if text.upper() not in SEVERITY_ORDER:
            raise FilterError(f"unknown severity {text!r} in term {raw!r}")
        return Comparison(field, op, SEVERITY_ORDER.index(text.upper()), raw)
    if field == "timestamp":
        return Comparison(field, op, parse_timestamp(text, raw), raw)
    raise FilterError(f"unsupported field {field!r} in term {raw!r}")


def parse_timestamp(text: str, raw: str = "") -> dt.datetime:
    """RFC 3339 with Z or an offset, fractional seconds up to nanoseconds."""
    # datetime keeps microseconds: drop digits past the sixth rather than reject them.
    cleaned = _FRACTION_RE.sub(r"\1", text)
    try:
        when = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise FilterError(f"invalid timestamp {text!r} in term {raw or text!r}") from None
    if when.tzinfo is None:
        raise FilterError(f"timestamp {text!r} in term {raw or text!r} needs a date, a "
                          "time and a zone (e.g. 2024-12-07T10:00:00Z)")
    return when


def _field_value(field: str, entry: EmuLogEntry, project: str,
                 location: str) -> str | int | dt.datetime:
    getters: dict[str, Callable[[], str | int | dt.datetime]] = {
        "resource.type": lambda: entry.resource_type,
        "resource.labels.service_name": lambda: entry.service,
        "resource.labels.configuration_name": lambda: entry.service,
        "resource.labels.revision_name": lambda: entry.revision,
        "resource.labels.location": lambda: location,
        "resource.labels.project_id": lambda: project,
        "logName": lambda: f"projects/{project}/logs/{STDERR_LOG}",
        "textPayload": lambda: entry.message,
        "severity": lambda: SEVERITY_ORDER.index(entry.severity),
        "timestamp": lambda: entry.timestamp,
    }
    return getters[field]()


def _matches(c: Comparison, entry: EmuLogEntry, project: str, location: str) -> bool:
    actual = _field_value(c.field, entry, project, location)
    if c.op == ":":
        return str(c.value).lower() in str(actual).lower()
    compare: dict[str, Callable[[object, object], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,  # type: ignore[operator]
        "<=": lambda a, b: a <= b,  # type: ignore[operator]
        ">": lambda a, b: a > b,  # type: ignore[operator]
        ">=": lambda a, b: a >= b,  # type: ignore[operator]
    }
    return compare[c.op](actual, c.value)
