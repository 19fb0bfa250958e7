"""The service's smoke suite as a process (runbook: "pnpm run test:smoke").

`run_smoke_command` runs the catalog's `smoke_command` argument list without a shell,
in its own process group, with secrets removed from the inherited environment. Output
(stdout and stderr combined) is streamed through a bounded buffer: only the last
lines are kept, each clipped, however much the suite prints. On timeout (or when the
caller is cancelled) the whole process group is killed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import re
import signal
import time
from collections.abc import Mapping

from bot.catalog import SmokeCommand
from bot.checks import CheckKind, CheckResult

log = logging.getLogger(__name__)

LAST_LINES = 10
MAX_LINE_CHARS = 300
READ_CHUNK = 64 * 1024
# Bytes kept of the line being read: enough for MAX_LINE_CHARS of UTF-8 and escapes.
MAX_PARTIAL_BYTES = MAX_LINE_CHARS * 8
DRAIN_GRACE_SECONDS = 1.0  # output still open after the command exits (a leftover child)

_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD")
_SECRET_NAMES = frozenset({"DATABASE_URL", "REDIS_URL"})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


@dataclasses.dataclass(frozen=True)
class SmokeCommandResult:
    ok: bool
    exit_code: int | None  # None when it could not start or was killed on timeout
    duration_s: float
    last_lines: tuple[str, ...]  # last lines of combined stdout/stderr, each clipped
    timed_out: bool


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in _SECRET_NAMES or any(word in upper for word in _SECRET_WORDS)


def smoke_environment(environ: Mapping[str, str] | None = None,
                      extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) without secret-named variables, plus `extra`
    (variables the caller chose to give the suite, e.g. the target's base URL)."""
    source = os.environ if environ is None else environ
    env = {key: value for key, value in source.items() if not is_secret_name(key)}
    env.update(extra or {})
    return env


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


class LineTail:
    """The last `keep` non-blank lines of a byte stream, in bounded memory."""

    def __init__(self, keep: int = LAST_LINES) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._partial = bytearray()
        self._clipped = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._partial)

    def feed(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        for piece in complete:
            self._take(piece)
            self._end_line()
        self._take(rest)

    def close(self) -> tuple[str, ...]:
        self._end_line()
        return tuple(self.lines)

    def _take(self, piece: bytes) -> None:
        room = MAX_PARTIAL_BYTES - len(self._partial)
        if len(piece) > room:
            self._clipped = True
            piece = piece[:max(room, 0)]
        self._partial += piece

    def _end_line(self) -> None:
        text = _ANSI.sub("", bytes(self._partial).decode("utf-8", "replace")).rstrip()
        clipped = self._clipped
        self._partial.clear()
        self._clipped = False
        if not text.strip():
            return
        if clipped and len(text) <= MAX_LINE_CHARS:
            text = text[: MAX_LINE_CHARS - 1] + "…"
        self.lines.append(_clip(text))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _pump(stream: asyncio.StreamReader, tail: LineTail) -> None:
    while chunk := await stream.read(READ_CHUNK):
        tail.feed(chunk)


async def _exited(process: asyncio.subprocess.Process, pump: asyncio.Task[None]) -> None:
    """Until the process has exited. (On 3.11 `Process.wait()` also waits for its pipes
    to close, which a leftover grandchild can hold open; `returncode` is set at exit.)"""
    while process.returncode is None:
        if pump.done():  # output closed: wait() now returns as soon as it exits
            await process.wait()
            return
        await asyncio.wait({pump}, timeout=0.05)


async def run_smoke_command(spec: SmokeCommand, *,
                            env: Mapping[str, str] | None = None) -> SmokeCommandResult:
    """Run the smoke suite once; never raises for the suite's own failures.

    `env`: extra variables for the suite, added to the inherited environment (from
    which variables named like *TOKEN*, *SECRET*, *PASSWORD*, DATABASE_URL and
    REDIS_URL are removed)."""
    started = time.monotonic()
    tail = LineTail()

    def result(ok: bool, exit_code: int | None, timed_out: bool) -> SmokeCommandResult:
        return SmokeCommandResult(ok=ok, exit_code=exit_code,
                                  duration_s=round(time.monotonic() - started, 3),
                                  last_lines=tail.close(), timed_out=timed_out)

    try:
        process = await asyncio.create_subprocess_exec(
            *spec.command, cwd=spec.cwd, env=smoke_environment(extra=env),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
    except OSError as exc:
        log.warning("smoke command %s could not start: %s", spec.command[0], exc)
        where = f" in {spec.cwd}" if spec.cwd and isinstance(exc, FileNotFoundError) else ""
        tail.feed(f"cannot start {spec.command[0]}{where}: {exc.strerror or exc}".encode())
        return result(False, None, False)

    assert process.stdout is not None
    pump = asyncio.create_task(_pump(process.stdout, tail))
    timed_out = False
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            await _exited(process, pump)
            # A child left running may hold the output open; don't wait for it long.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), DRAIN_GRACE_SECONDS)
    except TimeoutError:
        timed_out = True
        log.warning("smoke command %s timed out after %gs; killing its process group",
                    spec.command[0], spec.timeout_seconds)
    finally:
        _kill_group(process.pid)  # the timed-out suite, or children it left behind
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), DRAIN_GRACE_SECONDS)
        if not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), DRAIN_GRACE_SECONDS)
    if timed_out:
        return result(False, None, True)
    return result(process.returncode == 0, process.returncode, False)


async def smoke_command_check(spec: SmokeCommand) -> tuple[CheckResult, tuple[str, ...]]:
    """The smoke command as one verification result, plus its last output lines."""
    result = await run_smoke_command(spec)
    if result.timed_out:
        detail = f"timed out after {spec.timeout_seconds:g}s"
    elif result.exit_code is None:
        detail = result.last_lines[-1] if result.last_lines else "could not start"
    else:
        detail = f"exit {result.exit_code} after {result.duration_s:.1f}s"
    check = CheckResult(name="smoke command: " + " ".join(spec.command)[:80], url="",
                        ok=result.ok, status=result.exit_code, detail=detail,
                        elapsed_ms=result.duration_s * 1000, kind=CheckKind.COMMAND)
    return check, result.last_lines
