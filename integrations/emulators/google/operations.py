"""google.longrunning.Operations: the long-running operations UpdateService returns."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable

from google.longrunning import operations_pb2
from google.protobuf import any_pb2, message

from .common import not_found

# Wait at most this long in WaitOperation when the caller gives no timeout.
_DEFAULT_WAIT = 60.0


@dataclasses.dataclass
class _PendingOp:
    proto: operations_pb2.Operation
    complete: Callable[[], message.Message]  # applies the change, returns the response
    done: asyncio.Event
    timer: asyncio.TimerHandle | None = None
    started: float = 0.0  # monotonic, for a benchmark's account of the waits
    finished: float | None = None  # when its delay was over (before the change applies)


def _pack(msg: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


class OperationStore:
    """Operations that finish ``delay`` seconds after they start.

    The change an operation makes is applied when it finishes (from a timer,
    whether or not anyone polls), as Cloud Run only routes traffic once the
    rollout is done: a caller has to wait for the operation to see the effect.
    """

    def __init__(self, never_finish: Callable[[], bool]) -> None:
        self._ops: dict[str, _PendingOp] = {}
        self._never_finish = never_finish

    def start(self, parent: str, metadata: message.Message,
              complete: Callable[[], message.Message], delay: float) -> operations_pb2.Operation:
        """Record a new operation under ``parent`` (projects/P/locations/L)."""
        name = f"{parent}/operations/{uuid.uuid4()}"
        proto = operations_pb2.Operation(name=name, done=False, metadata=_pack(metadata))
        op = _PendingOp(proto=proto, complete=complete, done=asyncio.Event(),
                        started=time.monotonic())
        self._ops[name] = op
        if delay <= 0 and not self._never_finish():
            self._finish(op)
        elif delay > 0:
            op.timer = asyncio.get_running_loop().call_later(delay, self._finish, op)
        return _copy(op.proto)

    def _finish(self, op: _PendingOp) -> None:
        op.timer = None
        # Checked at the due time so a test can freeze operations already in flight.
        if self._never_finish() or op.proto.done:
            return
        op.finished = time.monotonic()  # the wait is over; applying the change is work
        response = op.complete()
        op.proto.response.CopyFrom(_pack(response))
        op.proto.done = True
        op.done.set()

    def timings(self) -> dict[str, tuple[float, float | None]]:
        """Each operation's delay as it happened: (start, end), monotonic; end None
        while still waiting. A timer's real delay overshoots the one asked for."""
        return {name: (op.started, op.finished) for name, op in self._ops.items()}

    def close(self) -> None:
        for op in self._ops.values():
            if op.timer is not None:
                op.timer.cancel()
                op.timer = None

    def _lookup(self, name: str) -> _PendingOp:
        op = self._ops.get(name)
        if op is None:
            raise not_found(f"Operation {name!r} not found.")
        return op

    # --- RPCs ----------------------------------------------------------------
    def get_operation(
        self, request: operations_pb2.GetOperationRequest,
    ) -> operations_pb2.Operation:
        return _copy(self._lookup(request.name).proto)

    async def wait_operation(
        self, request: operations_pb2.WaitOperationRequest,
    ) -> operations_pb2.Operation:
        op = self._lookup(request.name)
        timeout = _DEFAULT_WAIT
        if request.HasField("timeout"):
            timeout = request.timeout.ToTimedelta().total_seconds()
        # Like Google: on timeout return the operation as it is, not an error.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(op.done.wait(), timeout)
        return _copy(op.proto)


def _copy(proto: operations_pb2.Operation) -> operations_pb2.Operation:
    out = operations_pb2.Operation()
    out.CopyFrom(proto)
    return out
