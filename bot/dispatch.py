"""Work a listener starts after its ack, without making Slack wait for it.

A listener acks, then submits what else the request needs (an ephemeral reply, an
audit row; durable hand-offs to a job go through bot/defer.py). Each runs as a
tracked asyncio task so the ack response leaves at once; if it fails, `on_error`
tells the user so nothing is lost silently. `drain()` waits for them on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.defer import HANDOFF_SECONDS  # the same bound for any work after the ack

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, handoff_seconds: float = HANDOFF_SECONDS) -> None:
        self._pending: set[asyncio.Task[Any]] = set()
        self._handoff_seconds = handoff_seconds

    def submit(
        self,
        work: Coroutine[Any, Any, Any],
        on_error: Callable[[BaseException], Awaitable[None]] | None = None,
        name: str = "handoff",
    ) -> asyncio.Task[Any]:
        async def guarded() -> None:
            try:
                async with asyncio.timeout(self._handoff_seconds):  # one task, not wait_for's two
                    await work
            except Exception as exc:
                log.exception("hand-off %s failed", name)
                if on_error is not None:
                    try:
                        await on_error(exc)
                    except Exception:
                        log.exception("could not report failed hand-off %s", name)

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
