"""Injected failures: rate limits, server errors and API errors for the next N calls."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Fault:
    status: int = 429
    retry_after: int = 1
    error: str | None = None
    delay: float = 0.0
    remaining: int = 1

    def render(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(HTTP status, JSON body, extra headers) as Slack answers in this case."""
        if self.error is not None:
            # Slack reports API-level errors with HTTP 200 and ok=false.
            return 200, {"ok": False, "error": self.error}, {}
        if self.status == 429:
            return 429, {"ok": False, "error": "ratelimited"}, {
                "Retry-After": str(self.retry_after)}
        return self.status, {"ok": False, "error": "internal_error"}, {}


class FaultPlan:
    """Per-method queues of faults; each call consumes one use of the oldest fault."""

    def __init__(self) -> None:
        self._faults: dict[str, list[Fault]] = {}

    def inject(self, method: str, *, status: int = 429, retry_after: int = 1, count: int = 1,
               error: str | None = None, delay: float = 0.0) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if error is None and not (status == 429 or 500 <= status <= 599):
            raise ValueError("status must be 429 or 5xx (or pass error=...)")
        self._faults.setdefault(method, []).append(
            Fault(status=status, retry_after=retry_after, error=error, delay=delay,
                  remaining=count))

    def take(self, method: str) -> Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    def pending(self, method: str) -> int:
        return sum(f.remaining for f in self._faults.get(method, []))

    def clear(self) -> None:
        self._faults.clear()
