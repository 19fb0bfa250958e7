"""`rollbot serve` as it ships: the HTTP listener in one process, the job worker in
a child process (ROLLBOT_WORKERS). Jobs still run, a killed worker is replaced,
/metrics counts the workers' calls, and no worker outlives the listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_cli import (
    TARGET_REVISION,
    Emulated,
    Proc,
    _clean_env,
    _free_port,
    _get_json,
    _wait_healthy,
    emulated,  # noqa: F401  (the fixture: `rollbot emulate` in its own process)
)

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"  # a zombie waiting for its reaper is gone too


def _grpc_threads(pid: int) -> list[str]:
    """gRPC's own threads in `pid` (its timer manager and event engine name theirs)."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names.append((task / "comm").read_text().strip())
    return [n for n in names if n.startswith(("grpc", "event_engine"))]


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])


async def _until(what: str, check: object, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {within}s"
        await asyncio.sleep(0.05)


async def _revisions_answered(http: aiohttp.ClientSession, emu: Emulated, base: str,
                              serve: Proc) -> None:
    """`/rollback api` is acked by the listener and answered by a job."""
    def answers(calls: list[dict[str, object]]) -> int:
        return sum(TARGET_REVISION in json.dumps(c["args"]) for c in calls)

    _, calls = await _get_json(http, f"{emu.control}/calls?method=response_url")
    before = answers(calls)
    async with http.post(f"{emu.control}/command", json={
        "app_url": f"{base}/slack/events", "text": "api", "user_id": "U0ALICE",
        "channel_id": "C0INCIDENT",
    }) as resp:
        assert (await resp.json())["status"] == 200
    deadline = time.monotonic() + 20
    while True:
        _, calls = await _get_json(http, f"{emu.control}/calls?method=response_url")
        if answers(calls) > before:
            return
        assert time.monotonic() < deadline, f"no revision list within 20s\n{serve.log()}"
        await asyncio.sleep(0.1)


async def _start(emu: Emulated, workers: int) -> tuple[Proc, str]:
    """`rollbot serve` with `workers`, once /healthz answers (stopped if it never does)."""
    port = _free_port()
    serve = await Proc.start("serve", "--host", "127.0.0.1", env=_clean_env(
        **emu.env, PORT=str(port), ROLLBOT_WORKERS=str(workers)))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await _wait_healthy(http, f"{base}/healthz", serve, within=20)
    except BaseException:
        await serve.stop()
        raise
    return serve, base


async def test_jobs_run_in_a_worker_process_that_is_replaced_and_stopped_with_serve(
    emulated: Emulated,  # noqa: F811
) -> None:
    serve, base = await _start(emulated, workers=1)
    listener = serve.proc.pid
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            (worker,) = _children(listener)
            assert _niceness(worker) == 19  # the kernel favours the listener's acks
            await _revisions_answered(http, emulated, base, serve)

            # Only the worker talks to Google: the listener has no gRPC channel, and
            # so none of the threads one starts (the worker, which does, shows them).
            assert _grpc_threads(worker)
            assert _grpc_threads(listener) == []

            # The worker's Cloud Run calls show on the listener's /metrics.
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
            assert 'rollbot_integration_call_seconds_count{method="ListRevisions"' \
                   in text.replace('system="cloud_run",', ""), text[:3000]

            os.kill(worker, signal.SIGKILL)
            await _until("a replacement worker", lambda: _children(listener) not in ([], [worker]))
            (replacement,) = _children(listener)
            assert replacement != worker
            await _revisions_answered(http, emulated, base, serve)
    finally:
        code = await serve.stop()
    assert code in (0, 130), f"`rollbot serve` exited with {code}:\n{serve.log()}"
    await _until("the worker to stop with serve", lambda: _gone(replacement), within=5)


async def test_a_worker_does_not_outlive_a_killed_listener(
    emulated: Emulated,  # noqa: F811
) -> None:
    serve, _ = await _start(emulated, workers=2)
    try:
        workers = _children(serve.proc.pid)
        assert len(workers) == 2
        serve.proc.kill()  # no clean-up code runs in the listener
        await serve.proc.wait()
        await _until("the workers to stop", lambda: all(_gone(pid) for pid in workers))
    finally:
        await serve.stop()


def _set_up_line(serve: Proc, pid: int) -> re.Match[str] | None:
    """The line `worker_processes.set_up_worker` logs in worker `pid`."""
    serve.stderr.seek(0)
    text = serve.stderr.read().decode(errors="replace")
    return re.search(rf"worker process {pid} set up: niceness (\d+), stops with process "
                     rf"(\d+), (\d+) objects frozen", text)


async def test_a_replacement_worker_is_set_up_as_the_first_ones(
    emulated: Emulated,  # noqa: F811
) -> None:
    serve, _ = await _start(emulated, workers=1)
    listener = serve.proc.pid
    try:
        (worker,) = _children(listener)
        os.kill(worker, signal.SIGKILL)
        await _until("a replacement worker", lambda: _children(listener) not in ([], [worker]))
        (replacement,) = _children(listener)
        await _until("the replacement's set-up", lambda: _set_up_line(serve, replacement))
        assert _niceness(replacement) == 19
        line = _set_up_line(serve, replacement)
        assert line is not None
        assert (int(line[1]), int(line[2])) == (19, listener)
        assert int(line[3]) > 100_000  # its imports' objects, frozen (settle_heap)
        first = _set_up_line(serve, worker)
        assert first is not None and int(first[1]) == 19  # the same set-up as the fork's

        serve.proc.kill()  # no clean-up code runs in the listener: only the kernel's signal
        await serve.proc.wait()
        await _until("the replacement to stop", lambda: _gone(replacement))
    finally:
        await serve.stop()


async def test_zero_workers_runs_jobs_in_the_listener(
    emulated: Emulated,  # noqa: F811
) -> None:
    serve, base = await _start(emulated, workers=0)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            assert _children(serve.proc.pid) == []
            await _revisions_answered(http, emulated, base, serve)
    finally:
        code = await serve.stop()
    assert code in (0, 130)
