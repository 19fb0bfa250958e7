"""One way to call a Google API: bounded retries with backoff on transient errors.

Shared by the Cloud Run, Cloud Logging and Cloud Monitoring clients. The GAPIC
clients' own retry is switched off at each call site (`retry=None`) so this
policy is the only one, and each client maps what is left to its own error type.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.api_core import exceptions as gexc
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

T = TypeVar("T")

TRANSIENT = (
    gexc.TooManyRequests,  # 429
    gexc.ResourceExhausted,  # gRPC's RESOURCE_EXHAUSTED, Cloud Run's 429
    gexc.InternalServerError,  # 500
    gexc.BadGateway,  # 502
    gexc.ServiceUnavailable,  # 503
    gexc.GatewayTimeout,  # 504
    gexc.DeadlineExceeded,
    asyncio.TimeoutError,
)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    total_seconds: float = 60.0
    initial_wait: float = 0.5
    max_wait: float = 8.0
    call_timeout: float = 20.0
    operation_timeout: float = 120.0  # how long a traffic change may take


async def call_with_retry(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Exception],
    on_attempt: Callable[[float, str], None] | None = None,
) -> T:
    """`fn()` under `policy`; what still fails is raised as `classify(exc)`.

    `on_attempt(seconds, outcome)` is told of every attempt ("ok" or the
    exception's class name), retries included.
    """
    loop = asyncio.get_running_loop()
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.total_seconds),
            wait=wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait),
            retry=retry_if_exception(lambda e: isinstance(e, TRANSIENT)),
            reraise=True,
        ):
            with attempt:
                started = loop.time()
                try:
                    # asyncio.timeout runs fn in this task: no extra task per call
                    # (wait_for's), so a call goes out without a loop turn.
                    async with asyncio.timeout(policy.call_timeout):
                        result = await fn()
                except BaseException as exc:
                    if on_attempt is not None:
                        on_attempt(loop.time() - started, type(exc).__name__)
                    raise
                if on_attempt is not None:
                    on_attempt(loop.time() - started, "ok")
                return result
    except Exception as exc:
        raise classify(exc) from exc
    raise AssertionError("unreachable: tenacity either returns or reraises")
