"""The CLI as an operator runs it: `rollbot emulate` in one process, `rollbot serve`
in another, `/rollback api` delivered through the emulator's control API.

Everything listens on 127.0.0.1; every subprocess is stopped (SIGINT, then kill)
whatever happens, and `emulate` must take its embedded Postgres and Redis with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parents[2]
EMULATE_NAMES = {"SLACK_API_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
                 "ROLLBOT_GCP_EMULATOR_HOST", "ROLLBOT_CONFIG", "DATABASE_URL", "REDIS_URL"}
EXPORT = re.compile(r"^export ([A-Z_][A-Z0-9_]*)=(.*)$")
TARGET_REVISION = "medicalcor-api-00014-def"

pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    """Our environment minus anything rollbot reads, so embedded stores start and
    nothing leaks in from the developer's shell."""
    drop = EMULATE_NAMES | {"SLACK_APP_TOKEN", "PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    """A `python -m bot ...` child; stderr goes to a temp file for diagnostics."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: IO[bytes], name: str) -> None:
        self.proc, self.stderr, self.name = proc, stderr, name

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Proc:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        except BaseException:
            stderr.close()
            raise
        return cls(proc, stderr, " ".join(args))

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def stop(self, grace: float = 10.0) -> int:
        """SIGINT (what Ctrl-C sends), then SIGKILL if it does not exit in time."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        self.stderr.close()
        assert self.proc.returncode is not None
        return self.proc.returncode


async def _read_exports(emulate: Proc, within: float) -> tuple[dict[str, str], list[str]]:
    """The `export NAME=value` lines `rollbot emulate` prints, once all are there."""
    assert emulate.proc.stdout is not None
    env: dict[str, str] = {}
    lines: list[str] = []
    deadline = time.monotonic() + within
    while not env.keys() >= EMULATE_NAMES:
        remaining = deadline - time.monotonic()
        try:
            raw = await asyncio.wait_for(emulate.proc.stdout.readline(), max(remaining, 0.01))
        except TimeoutError:
            raw = b""
        if not raw:
            raise AssertionError(
                f"`rollbot emulate` printed no complete env block within {within}s "
                f"(exit code {emulate.proc.returncode}); stdout so far:\n"
                + "\n".join(lines) + f"\nstderr:\n{emulate.log()}")
        line = raw.decode().rstrip("\n")
        lines.append(line)
        if match := EXPORT.match(line):
            (value,) = shlex.split(match.group(2))
            env[match.group(1)] = value
    return env, lines


async def _get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


async def _wait_healthy(http: aiohttp.ClientSession, url: str, serve: Proc,
                        within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        if not serve.alive():
            raise AssertionError(f"`rollbot serve` exited with {serve.proc.returncode}:\n"
                                 f"{serve.log()}")
        with contextlib.suppress(aiohttp.ClientError):
            status, _ = await _get_json(http, url)
            if status == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not healthy within {within}s:\n{serve.log()}")
        await asyncio.sleep(0.1)


class Emulated:
    def __init__(self, proc: Proc, env: dict[str, str], stdout: list[str]) -> None:
        self.proc, self.env, self.stdout = proc, env, stdout

    @property
    def control(self) -> str:
        parts = urlsplit(self.env["SLACK_API_URL"])
        return f"{parts.scheme}://{parts.netloc}/_emulator"

    def store_ports(self) -> list[int]:
        return [int(urlsplit(self.env[name]).port or 0) for name in ("DATABASE_URL", "REDIS_URL")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def emulated() -> AsyncIterator[Emulated]:
    proc = await Proc.start("emulate", env=_clean_env())
    try:
        env, stdout = await _read_exports(proc, within=20)
        emulated = Emulated(proc, env, stdout)
        yield emulated
    finally:
        code = await proc.stop()
    # SIGINT is a clean stop: exit 0, embedded Postgres and Redis gone with it.
    assert code == 0, f"`rollbot emulate` exited with {code} on SIGINT"
    for port in emulated.store_ports():
        assert not _port_open(port), f"an embedded server still listens on {port}"


async def test_emulate_prints_env_and_a_curl_example(emulated: Emulated) -> None:
    assert emulated.env["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
    assert emulated.env["REDIS_URL"].startswith("redis://127.0.0.1:")
    stdout = emulated.proc.proc.stdout
    assert stdout is not None
    command = calls = ""
    while not (command and calls):  # the example follows the env block
        line = (await asyncio.wait_for(stdout.readline(), 5)).decode()
        assert line, f"no curl example in the output:\n{emulated.stdout}"
        emulated.stdout.append(line.rstrip("\n"))
        if line.startswith("curl ") and f"{emulated.control}/command" in line:
            command = line
        elif line.startswith("curl ") and f"{emulated.control}/calls" in line:
            calls = line
    # Ready to copy: a valid shell command whose JSON names the bot's events URL on $PORT.
    argv = shlex.split(command.replace("${PORT:-3000}", "3456"))
    body = json.loads(argv[argv.index("-d") + 1])
    assert body == {"app_url": "http://127.0.0.1:3456/slack/events", "text": "api",
                    "user_id": "U0ALICE", "channel_id": "C0INCIDENT"}


async def test_serve_answers_rollback_api_through_the_emulators(emulated: Emulated) -> None:
    port = _free_port()
    serve = await Proc.start("serve", "--host", "127.0.0.1",
                             env=_clean_env(**emulated.env, PORT=str(port)))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await _wait_healthy(http, f"{base}/healthz", serve, within=20)
            assert await _get_json(http, f"{base}/readyz") == (
                200, {"status": "ready", "checks": {"database": "ok", "redis": "ok"}})

            async with http.post(f"{emulated.control}/command", json={
                "app_url": f"{base}/slack/events", "text": "api", "user_id": "U0ALICE",
                "channel_id": "C0INCIDENT",
            }) as resp:
                assert resp.status == 200, await resp.text()
                ack = await resp.json()
            assert ack["status"] == 200, ack
            assert ack["elapsed"] < 3, ack  # Slack's ack deadline

            deadline = time.monotonic() + 20
            while True:
                _, calls = await _get_json(http, f"{emulated.control}/calls?method=response_url")
                if any(TARGET_REVISION in json.dumps(c["args"]) for c in calls):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no response_url post naming {TARGET_REVISION} within 20s; "
                        f"response_url calls: {json.dumps(calls)[:2000]}\n{serve.log()}")
                await asyncio.sleep(0.1)
    finally:
        code = await serve.stop()
    assert code in (0, 130), f"`rollbot serve` exited with {code} on SIGINT"


async def test_migrate_against_the_emulated_database(emulated: Emulated) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate", cwd=ROOT,
        env=_clean_env(DATABASE_URL=emulated.env["DATABASE_URL"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    stdout = out.decode()
    assert "applied: nothing (schema is current)" in stdout or re.search(
        r"applied: \S+", stdout), stdout


def _run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)


def _serving_env(**overrides: str) -> dict[str, str]:
    # Stores that are never contacted: configuration is checked before anything starts.
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret",
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
           "REDIS_URL": "redis://127.0.0.1:9/0", "PORT": str(_free_port()),
           "ROLLBOT_CONFIG": str(ROOT / "rollbot.toml")}
    return _clean_env(**(env | overrides))


def test_serve_without_signing_secret_exits_2_naming_it() -> None:
    # Empty rather than unset, so that a developer's .env cannot fill it in.
    result = _run_serve(_serving_env(SLACK_SIGNING_SECRET=""))
    assert result.returncode == 2, result.stderr
    assert "SLACK_SIGNING_SECRET" in result.stderr
    assert "SLACK_BOT_TOKEN" not in result.stderr


@pytest.mark.parametrize("workers", ["many", "-1", "99"])
def test_serve_with_bad_worker_count_exits_2_naming_it(workers: str) -> None:
    result = _run_serve(_serving_env(ROLLBOT_WORKERS=workers))
    assert result.returncode == 2, result.stderr
    assert f"ROLLBOT_WORKERS={workers!r}" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_without_database_exits_2_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=_serving_env(DATABASE_URL=""),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL" in result.stderr and "SLACK_BOT_TOKEN" not in result.stderr


def test_serve_with_broken_catalog_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    text = (ROOT / "rollbot.toml").read_text(encoding="utf-8")
    broken = re.sub(r"(?m)^window_seconds = 120\b.*$", 'window_seconds = "two minutes"', text,
                    count=1)
    assert broken != text
    catalog = tmp_path / "broken.toml"
    catalog.write_text(broken, encoding="utf-8")
    result = _run_serve(_serving_env(ROLLBOT_CONFIG=str(catalog)))
    assert result.returncode == 2, result.stderr
    assert str(catalog) in result.stderr
    assert "services.api.verification.window_seconds" in result.stderr
