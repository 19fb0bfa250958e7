"""Process helpers of rollbot's benchmark: /proc readings and the servers under test.

What /proc says about a process and its descendants (CPU time, RSS and PSS memory,
the machine's load), free ports and log files in bench/results/, and the Server class
that runs a server under test as a subprocess on 127.0.0.1 (rollbot's
`python -m bot serve`, or a bare Bolt app from bench/bare_bolt.py), with a watchdog
that stops it if the benchmark is killed. Measures nothing by itself: bench/acks.py
and bench/run.py time and weigh the servers with these helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from common import BENCH, RESULTS, ROOT

from integrations.emulators.launcher import EmulatedWorld

# --- /proc readings and small helpers -------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (rollbot serve's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its children have used so far
    (/proc/<pid>/stat): the listener and its job workers together."""
    total = 0.0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is None:
            if member == pid:
                return math.nan
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def memory_mb(pid: int) -> dict[str, Any]:
    """RSS of each process of the tree, and the sum of their PSS: pages the forked
    workers share with the listener counted once (RSS would count them in each)."""
    each, pss_kb = {}, 0
    for member in process_tree(pid):
        rss = read_status_kb(member, "VmRSS")
        if rss is None:
            continue
        each[str(member)] = rss / 1024
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text(encoding="utf-8")
        except OSError:
            continue
        pss_kb += next(int(line.split()[1]) for line in rollup.splitlines()
                       if line.startswith("Pss:"))
    return {"processes": len(each), "rss_mb_each": each, "pss_total_mb": pss_kb / 1024}


def loadavg() -> str:
    """The machine's load: other processes on the same cores skew every number."""
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def open_log(name: str) -> TextIO:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return (RESULTS / name).open("w", encoding="utf-8")


async def wait_or_kill(proc: asyncio.subprocess.Process, seconds: float) -> None:
    """Give a process `seconds` to exit after it was asked to, then kill it."""
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


# Run as `python -I -S -c WATCHDOG <pid>` with a pipe from us on stdin. A byte means
# "stand down"; bare EOF means this process died: stop the server (TERM, then KILL),
# so no server outlives a killed benchmark.
WATCHDOG = r"""
import os, signal, sys, time
pid = int(sys.argv[1])
try:
    if os.read(0, 1): sys.exit(0)
except OSError: pass
try: os.kill(pid, signal.SIGTERM)
except OSError: sys.exit(0)
end = time.monotonic() + 10
while time.monotonic() < end:
    try: os.kill(pid, 0)
    except OSError: sys.exit(0)
    time.sleep(0.1)
try: os.kill(pid, signal.SIGKILL)
except OSError: pass
"""


class Server:
    """A subprocess serving HTTP on 127.0.0.1 (rollbot or a bare Bolt app)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], url: str) -> None:
        self.name, self.argv, self.env, self.url = name, argv, env, url
        self.proc: asyncio.subprocess.Process | None = None
        self.watchdog: asyncio.subprocess.Process | None = None
        self.spawned = 0.0
        self._log: TextIO | None = None

    async def start(self) -> None:
        self._log = open_log(f"{self.name}.log")
        self.spawned = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log, stderr=asyncio.subprocess.STDOUT)
        self.watchdog = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", WATCHDOG, str(self.proc.pid),
            stdin=asyncio.subprocess.PIPE)

    async def wait_ok(self, path: str, within: float = 30.0) -> float:
        """Seconds from spawn until GET path answers 200 (polled every 10 ms)."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while loop.time() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                       f"see {RESULTS / (self.name + '.log')}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + path) as resp:
                        if resp.status == 200:
                            return time.perf_counter() - self.spawned
                await asyncio.sleep(0.01)
        raise RuntimeError(f"{self.name}: {path} not 200 within {within:g}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await wait_or_kill(proc, 20)
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.write(b"x")
                await watchdog.stdin.drain()
                watchdog.stdin.close()
            await wait_or_kill(watchdog, 5)
        if self._log is not None:
            self._log.close()
            self._log = None


# --- the servers under test -----------------------------------------------------------

def bot_server(emulated: EmulatedWorld, name: str) -> Server:
    port = free_port()
    env = {**os.environ, **emulated.env(), "PORT": str(port)}
    # ROLLBOT_BENCH_PROFILE=FILE runs the server under cProfile (a diagnosis, not a result).
    profile = os.environ.get("ROLLBOT_BENCH_PROFILE")
    python = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    return Server(name, [*python, "-m", "bot", "serve", "--host", "127.0.0.1"], env,
                  f"http://127.0.0.1:{port}")


def bare_server(emulated: EmulatedWorld, mode: str) -> Server:
    port = free_port()
    env = {**os.environ, **emulated.env()}
    return Server(f"bolt-{mode}", [sys.executable, str(BENCH / "bare_bolt.py"), "--mode", mode,
                                   "--port", str(port)], env, f"http://127.0.0.1:{port}")
