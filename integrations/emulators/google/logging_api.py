"""Cloud Logging v2: google.logging.v2.LoggingServiceV2/ListLogEntries over World.logs."""

from __future__ import annotations

import datetime as dt

from google.api import monitored_resource_pb2
from google.cloud.logging_v2 import types as logging_types
from google.logging.type import log_severity_pb2

from ..world import EmuLogEntry, World
from .common import invalid, not_found, paginate
from .log_filter import STDERR_LOG, FilterError, parse_filter

_MAX_PAGE = 1000
_DEFAULT_PAGE = 50  # Google's documented default for entries.list


class LoggingApi:
    def __init__(self, world: World) -> None:
        self.world = world

    def _check_resource_names(self, names: list[str]) -> None:
        if not names:
            raise invalid("resource_names must name at least one resource, e.g. "
                          f"projects/{self.world.project}")
        for name in names:
            parts = name.split("/")
            if len(parts) != 2 or parts[0] != "projects":
                raise invalid(f"resource name {name!r} is not supported by the emulator "
                              "(use projects/{project})")
            if parts[1] != self.world.project:
                raise not_found(f"Project '{parts[1]}' not found "
                                f"(this emulator serves project '{self.world.project}').")

    def list_log_entries(self, request: logging_types.ListLogEntriesRequest,
                         ) -> logging_types.ListLogEntriesResponse:
        self._check_resource_names(list(request.resource_names))
        try:
            log_filter = parse_filter(request.filter)
        except FilterError as exc:
            raise invalid(f"Unsupported filter: {exc}") from None
        if request.page_size > _MAX_PAGE:
            raise invalid(f"page_size must be at most {_MAX_PAGE}, got {request.page_size}")
        order = " ".join(request.order_by.split()).lower()
        if order not in ("", "timestamp", "timestamp asc", "timestamp desc"):
            raise invalid(f"order_by {request.order_by!r} is not supported "
                          "(use 'timestamp asc' or 'timestamp desc')")
        # Keep the World index: it gives each entry a stable insert_id across calls.
        indexed = [
            (i, e) for i, e in enumerate(self.world.logs)
            if log_filter.matches(e, project=self.world.project, location=self.world.region)
        ]
        indexed.sort(key=lambda ie: (ie[1].timestamp, ie[0]), reverse=order.endswith("desc"))
        page, token = paginate(indexed, request.page_size, request.page_token,
                               default_size=_DEFAULT_PAGE, max_size=_MAX_PAGE)
        return logging_types.ListLogEntriesResponse(
            entries=[self._entry(i, e) for i, e in page], next_page_token=token,
        )

    def _entry(self, index: int, entry: EmuLogEntry) -> logging_types.LogEntry:
        resource = monitored_resource_pb2.MonitoredResource(
            type=entry.resource_type,
            labels={
                "service_name": entry.service,
                "revision_name": entry.revision,
                "configuration_name": entry.service,
                "location": self.world.region,
                "project_id": self.world.project,
            },
        )
        return logging_types.LogEntry(
            log_name=f"projects/{self.world.project}/logs/{STDERR_LOG}",
            resource=resource,
            timestamp=entry.timestamp,
            receive_timestamp=entry.timestamp + dt.timedelta(milliseconds=40),
            severity=log_severity_pb2.LogSeverity.Value(entry.severity),
            text_payload=entry.message,
            insert_id=f"emu{index:010d}",
        )
