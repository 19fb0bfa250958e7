"""One way to call a Google API: bounded retries with backoff on transient errors,
and one error for what still fails.

Shared by the Cloud Run, Cloud Logging and Cloud Monitoring clients. The GAPIC
clients' own retry is switched off at each call site (`retry=None`) so this
policy is the only one; what is left is raised as a `GoogleCallError`.
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


class GoogleCallError(Exception):
    """A Google API call failed; `kind` says how, `message` says it for people.

    kind: not_found | permission | invalid | conflict | unavailable | timeout | error;
    conflict: the resource changed since it was read (re-read and re-check).
    Refusals (not_found, permission, invalid, conflict) leave the service's name
    out of `message`: the caller says which service refused.
    """

    def __init__(self, kind: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.transient = transient


def classify(exc: BaseException, service: str) -> GoogleCallError:
    """`exc`, raised calling `service` ("Cloud Run", "Cloud Logging", ...), as a
    GoogleCallError (itself when it already is one)."""
    if isinstance(exc, GoogleCallError):
        return exc
    if isinstance(exc, gexc.NotFound):
        return GoogleCallError("not_found", f"not found: {exc.message}")
    if isinstance(exc, gexc.PermissionDenied | gexc.Unauthenticated):
        return GoogleCallError("permission", f"permission denied: {exc.message}")
    if isinstance(exc, gexc.Aborted):  # a stale etag on a write
        return GoogleCallError(
            "conflict", f"the service changed since it was read: {exc.message}")
    if isinstance(exc, gexc.AlreadyExists):
        return GoogleCallError("invalid", f"already exists: {exc.message}")
    if isinstance(exc, gexc.InvalidArgument | gexc.FailedPrecondition):
        return GoogleCallError("invalid", f"request refused: {exc.message}")
    if isinstance(exc, asyncio.TimeoutError | gexc.DeadlineExceeded):
        return GoogleCallError("timeout", f"{service} did not answer in time", transient=True)
    if isinstance(exc, TRANSIENT):
        msg = getattr(exc, "message", str(exc))
        return GoogleCallError("unavailable", f"{service} unavailable: {msg}", transient=True)
    if isinstance(exc, gexc.GoogleAPICallError):
        return GoogleCallError("error", f"{service} error: {exc.message}")
    return GoogleCallError("error", f"{service} error: {type(exc).__name__}: {exc}")


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
    service: str,
    on_attempt: Callable[[float, str], None] | None = None,
) -> T:
    """`fn()` under `policy`; what still fails is raised as a GoogleCallError
    naming `service`.

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
        raise classify(exc, service) from exc
    raise AssertionError("unreachable: tenacity either returns or reraises")
