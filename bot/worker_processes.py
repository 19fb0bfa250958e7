"""`rollbot serve` runs its job worker in child processes, so the work after an
ack (Cloud Run calls, rendering, Slack posts) never sits on the event loop that
answers Slack: the listener only acks and hands off. One container still runs
the whole bot, and the jobs stay in Postgres, so nothing is lost if a worker dies.

The first workers are forked once every module is imported and before any event
loop, thread, socket or gRPC channel exists (gRPC must not be forked with live
channels): they share the imported code's memory pages with the listener. A
worker that dies is replaced by a fresh `python -m bot worker --supervised-by PID`
(forking from a running event loop is unsafe). Both kinds go through
set_up_worker: niceness 19, a frozen heap, and a request to the kernel to stop the
worker when the listener dies (PR_SET_PDEATHSIG), so none outlives it, even after
a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# Beyond a worker's shutdown grace: its jobs' wind-down, then closing its pools.
STOP_MARGIN_SECONDS = 2.5
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Under CPU contention the kernel favours the listener (Slack gives up after 3 s);
# the jobs still get every cycle the listener leaves idle.
WORKER_NICENESS = 19


def share_metrics_between_processes() -> Callable[[], None]:
    """Every process writes its metric values to files in one directory, and the
    listener's /metrics sums them (prometheus_client's multiprocess mode). Must run
    before prometheus_client is imported. Returns the clean-up."""
    if os.environ.get(METRICS_DIR_ENV):
        return lambda: None  # the operator chose a directory: theirs to manage
    path = tempfile.mkdtemp(prefix="rollbot-metrics-")
    os.environ[METRICS_DIR_ENV] = path
    return lambda: shutil.rmtree(path, ignore_errors=True)


def set_up_worker(parent: int) -> None:
    """Make this process one of `rollbot serve`'s workers: the first ones (forked)
    and their replacements (`rollbot worker --supervised-by PID`) alike. Call after
    start-up's imports, before any event loop or thread exists.

    - The kernel sends it SIGTERM when `parent` dies (PR_SET_PDEATHSIG), so none
      outlives the listener, even one killed with SIGKILL; a parent that died before
      the request took effect is caught by reading getppid afterwards.
    - Niceness 19: under CPU contention the kernel favours the listener's acks.
    - The heap is settled (settle_heap): a no-op in a fork, which shares its frozen
      heap with the listener; a replacement freezes its own imports."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    os.setpriority(os.PRIO_PROCESS, 0, max(WORKER_NICENESS, os.getpriority(os.PRIO_PROCESS, 0)))
    settle_heap()
    log.info("worker process %s set up: niceness %s, stops with process %s, %s objects "
             "frozen", os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), parent,
             gc.get_freeze_count())


def settle_heap() -> None:
    """After start-up's imports: freeze what they made, and collect from here on.

    Imports make hundreds of thousands of objects that live as long as the process;
    left in the collector's care, each full collection walked them all (40-65 ms in
    the listener, in the middle of acks). Pair with gc.disable() before the imports:
    the ~100 ms of collections they set off found next to nothing (a full one, about
    500 objects, not worth its 65 ms either)."""
    gc.freeze()
    gc.enable()


def fork_workers(count: int, run: Callable[[], int]) -> list[int]:
    """Fork `count` children that each call `run()` and exit with its status.
    Call before any event loop or thread exists. The heap is settled first (see
    settle_heap), which also keeps the collector from touching, and so copying,
    the pages the children share with the listener."""
    settle_heap()
    parent = os.getpid()
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                set_up_worker(parent)
                code = run()
            except BaseException:  # the child must never fall back into the parent's code
                log.exception("worker process failed")
            finally:
                logging.shutdown()
                os._exit(code)
        pids.append(pid)
    return pids


class _Child:
    """A worker process: forked (pid only) or spawned (asyncio Process)."""

    def __init__(self, pid: int, proc: asyncio.subprocess.Process | None = None) -> None:
        self.pid, self.proc = pid, proc
        self.started = time.monotonic()
        self._code: int | None = None

    def exit_code(self) -> int | None:
        """None while it runs; reaps it once it has exited."""
        if self.proc is not None:
            return self.proc.returncode
        if self._code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone all the same
                pid, status = self.pid, 0
            if pid:
                self._code = os.waitstatus_to_exitcode(status)
        return self._code


class WorkerSupervisor:
    """Keeps `count` worker processes running beside the listener."""

    def __init__(self, pids: list[int], *, grace_seconds: float,
                 poll_seconds: float = 0.5) -> None:
        """`grace_seconds`: the workers' own shutdown grace (ROLLBOT_SHUTDOWN_GRACE_SECONDS)."""
        self._children = [_Child(pid) for pid in pids]
        self._stop_within = grace_seconds + STOP_MARGIN_SECONDS
        self._poll = poll_seconds
        self._stopping = False
        self._restarts = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children]

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="worker-supervisor")

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._poll)
            for index, child in enumerate(list(self._children)):
                code = child.exit_code()
                if code is None or self._stopping:
                    continue
                lived = time.monotonic() - child.started
                delay = RESTART_BACKOFF_SECONDS[min(self._restarts,
                                                   len(RESTART_BACKOFF_SECONDS) - 1)]
                delay = 0.0 if lived > 60 else delay  # a crash loop backs off; a rare crash not
                log.error("worker process %s exited with %s after %.0f s; starting another "
                          "in %.0f s (its jobs stay queued in Postgres)",
                          child.pid, code, lived, delay)
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                self._children[index] = await self._spawn()
                self._restarts += 1

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", "--supervised-by", str(os.getpid()),
            stdin=asyncio.subprocess.DEVNULL)
        log.info("worker process %s started", proc.pid)
        return _Child(proc.pid, proc)

    def begin_stop(self) -> None:
        """SIGTERM every worker: each takes no new job and finishes (or hands back)
        the ones it runs, while the listener stops beside them."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        for child in self._children:
            if child.exit_code() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    async def stop(self) -> None:
        """begin_stop (unless done), then wait for the workers; SIGKILL what still
        runs past their grace period and margin (its jobs stall, and recovery
        queues them again)."""
        if not self._stopping:
            self.begin_stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_within
        while loop.time() < deadline:
            if all(child.exit_code() is not None for child in self._children):
                return
            await asyncio.sleep(0.05)
        for child in self._children:
            if child.exit_code() is None:
                log.error("worker process %s did not stop within %.1f s; killing it",
                          child.pid, self._stop_within)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                for _ in range(100):  # reap it: SIGKILL takes effect at once
                    if child.exit_code() is not None:
                        break
                    await asyncio.sleep(0.01)
