"""Cloud Logging: a Cloud Run service's recent errors, counted and grouped.

The runbook's ``gcloud logging read 'resource.type="cloud_run_revision" AND
severity>=ERROR' --freshness=5m``, over google-cloud-logging's asyncio GAPIC
client. Pages are fetched one call at a time so tenacity retries a failed page,
not the whole read; the GAPIC retry is switched off, as in cloud_run.py.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from google.cloud.logging_v2 import types as logging_types
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2AsyncClient
from google.protobuf import json_format

from .google_retry import RetryPolicy, call_with_retry

T = TypeVar("T")

PAGE_SIZE = 1000  # the API's maximum
MAX_PAGES = 100  # Cloud Logging may answer empty pages with a token; never loop forever
MAX_MESSAGE_CHARS = 300

_UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX_PREFIXED_RE = re.compile(r"\b0x[0-9a-f]+\b", re.I)
# Hex ids (trace ids, hashes, insert ids): 8+ hex characters with at least one digit.
_HEX_ID_RE = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I)
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")


@dataclasses.dataclass(frozen=True)
class ErrorLogSummary:
    count: int  # matching entries read (at most the cap)
    capped: bool  # there were more than `count`; the true number is higher
    samples: tuple[str, ...]  # most frequent distinct messages, most frequent first
    sample_counts: tuple[int, ...] = ()  # how many entries each sample stands for


class CloudLogs(Protocol):
    async def error_summary(
        self, service: str, start: dt.datetime, end: dt.datetime | None = None, *,
        samples: int = 3, cap: int = 1000,
    ) -> ErrorLogSummary: ...


# --- the query ------------------------------------------------------------------------

def rfc3339(when: dt.datetime) -> str:
    """UTC, 'Z'-suffixed; microseconds only when there are some."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"timestamp {when!r} has no time zone; pass an aware datetime")
    utc = when.astimezone(dt.UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def error_filter(service: str, start: dt.datetime, end: dt.datetime | None = None) -> str:
    """The Logging query for the service's ERROR-or-worse entries in [start, end)."""
    terms = [
        'resource.type="cloud_run_revision"',
        f"resource.labels.service_name={_quote(service)}",
        "severity>=ERROR",
        f'timestamp>="{rfc3339(start)}"',
    ]
    if end is not None:
        terms.append(f'timestamp<"{rfc3339(end)}"')
    return " AND ".join(terms)


# --- messages -------------------------------------------------------------------------

def entry_message(entry: logging_types.LogEntry) -> str:
    """The entry's text: textPayload, else jsonPayload.message (or its JSON), one line."""
    pb = logging_types.LogEntry.pb(entry)
    payload = pb.WhichOneof("payload")
    text = ""
    if payload == "text_payload":
        text = pb.text_payload
    elif payload == "json_payload":
        body = json_format.MessageToDict(pb.json_payload)
        message = body.get("message") or body.get("error") or body
        text = message if isinstance(message, str) else json.dumps(message, sort_keys=True)
    elif payload == "proto_payload":
        text = f"({pb.proto_payload.type_url.rsplit('/', 1)[-1]} payload)"
    text = " ".join(text.split())
    if not text:
        return "(empty message)"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def normalise(message: str) -> str:
    """A grouping key: ids and numbers replaced, so 'timeout after 123ms' variants match."""
    key = _UUID_RE.sub("<id>", message)
    key = _HEX_PREFIXED_RE.sub("<hex>", key)
    key = _HEX_ID_RE.sub("<id>", key)
    return _NUMBER_RE.sub("<n>", key)


def summarise(messages: list[str], *, samples: int, capped: bool = False) -> ErrorLogSummary:
    """Count ``messages`` (newest first) and pick the top ``samples`` groups.

    Each group is shown by its newest message; ties go to the group seen first.
    """
    counts: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for message in messages:
        key = normalise(message)
        counts[key] += 1
        example.setdefault(key, message)
    order = {key: i for i, key in enumerate(example)}
    top = sorted(counts, key=lambda k: (-counts[k], order[k]))[: max(samples, 0)]
    return ErrorLogSummary(
        count=len(messages), capped=capped,
        samples=tuple(example[k] for k in top), sample_counts=tuple(counts[k] for k in top),
    )


# --- the client -----------------------------------------------------------------------

class GoogleCloudLogs:
    """CloudLogs over the real google-cloud-logging asyncio client."""

    def __init__(self, client: LoggingServiceV2AsyncClient, project: str,
                 policy: RetryPolicy | None = None) -> None:
        self._client = client
        self._project = project
        self._policy = policy or RetryPolicy()

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retry(self._policy, fn, "Cloud Logging")

    def _page(self, request: logging_types.ListLogEntriesRequest,
              ) -> Callable[[], Awaitable[tuple[list[logging_types.LogEntry], str]]]:
        async def call() -> tuple[list[logging_types.LogEntry], str]:
            # The pager holds the first response; further pages are our own calls.
            pager: Any = await self._client.list_log_entries(
                request=request, retry=None, timeout=self._policy.call_timeout)
            return list(pager.entries), str(pager.next_page_token)

        return call

    async def error_summary(
        self, service: str, start: dt.datetime, end: dt.datetime | None = None, *,
        samples: int = 3, cap: int = 1000,
    ) -> ErrorLogSummary:
        """ERROR-or-worse entries of ``service`` since ``start`` (until ``end``), newest
        first, read up to ``cap`` entries."""
        if cap < 1:
            raise ValueError(f"cap must be at least 1, got {cap}")
        log_filter = error_filter(service, start, end)
        messages: list[str] = []
        token = ""
        capped = False
        for _ in range(MAX_PAGES):
            request = logging_types.ListLogEntriesRequest(
                resource_names=[f"projects/{self._project}"], filter=log_filter,
                order_by="timestamp desc", page_size=PAGE_SIZE, page_token=token,
            )
            entries, token = await self._call(self._page(request))
            room = cap - len(messages)
            messages.extend(entry_message(e) for e in entries[:room])
            if len(entries) > room or (len(messages) >= cap and token):
                capped = True
                break
            if not token:
                break
        else:
            capped = bool(token)  # gave up paging with more to read
        return summarise(messages, samples=samples, capped=capped)
