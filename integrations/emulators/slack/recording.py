"""The call log: every Web API call and response_url post, and waiting for one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class SlackCall:
    method: str  # Web API method, e.g. "chat.postMessage", or "response_url"
    args: dict[str, Any]  # decoded arguments (blocks/attachments/view parsed from JSON)
    response: dict[str, Any]
    time: float  # time.time() when answered
    http_status: int = 200

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and bool(self.response.get("ok"))

    def summary(self, width: int = 160) -> str:
        args = json.dumps(self.args, default=str)
        if len(args) > width:
            args = args[:width] + "..."
        outcome = "ok" if self.ok else f"error={self.response.get('error')!r}"
        return f"{self.method} [{self.http_status} {outcome}] {args}"


class CallLog:
    def __init__(self) -> None:
        self.calls: list[SlackCall] = []
        # Replaced on every record so waiters wake once per new call.
        self._changed = asyncio.Event()

    def record(self, call: SlackCall) -> None:
        self.calls.append(call)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    def dump(self) -> str:
        if not self.calls:
            return "  (no calls recorded)"
        return "\n".join(f"  #{i} {c.summary()}" for i, c in enumerate(self.calls))

    async def wait_for(self, method: str, predicate: Callable[[SlackCall], bool] = lambda c: True,
                       timeout: float = 5.0,  # noqa: ASYNC109 - the agreed test API
                       ) -> SlackCall:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        predicate_errors: list[str] = []
        while True:
            seen = min(seen, len(self.calls))  # the list may have been cleared meanwhile
            for call in self.calls[seen:]:
                if call.method != method:
                    continue
                try:
                    if predicate(call):
                        return call
                except Exception as exc:  # a predicate that trips on one call's shape
                    predicate_errors.append(f"{type(exc).__name__}: {exc}")
            seen = len(self.calls)
            remaining = deadline - loop.time()
            changed = self._changed
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                break
        hint = ""
        if predicate_errors:
            hint = "\npredicate raised (treated as no match): " + "; ".join(predicate_errors[:5])
        raise AssertionError(
            f"no matching {method} call within {timeout}s; "
            f"{len(self.calls_to(method))} {method} call(s) seen.{hint}\n"
            f"calls so far:\n{self.dump()}"
        )
