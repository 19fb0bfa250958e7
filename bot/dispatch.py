"""Work a listener starts after its ack, without making Slack wait for it.

A listener acks, then submits what else the request needs (an ephemeral reply, an
audit row; durable hand-offs to a job go through bot/defer.py). Each runs as a
tracked asyncio task so the ack response leaves at once; a failure is logged (what
must reach the user goes through bot/defer.py, whose failures are told to them).
`drain()` waits for them on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.defer import HANDOFF_SECONDS  # the same bound for any work after the ack

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, timeout: float = HANDOFF_SECONDS) -> None:
        self._pending: set[asyncio.Task[Any]] = set()
        self._timeout = timeout

    def submit(self, work: Coroutine[Any, Any, Any], name: str = "after-ack") -> asyncio.Task[Any]:
        async def guarded() -> None:
            try:
                async with asyncio.timeout(self._timeout):  # one task, not wait_for's two
                    await work
            except Exception:
                log.exception("after-ack work %s failed", name)

        task = asyncio.create_task(guarded(), name=name)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def drain(self, within: float = 10.0) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=within)
