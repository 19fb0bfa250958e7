"""Stopping while a job runs, as Cloud Run does (SIGTERM, 10 s before SIGKILL), and as a
shell script's end does: `rollbot serve`, `rollbot worker` and `rollbot shell` take no
new job, let the running one finish within ROLLBOT_SHUTDOWN_GRACE_SECONDS, queue one
still running past it again (any replica resumes it), and exit 0 with nothing on
stderr that says otherwise: no traceback, no AppNotOpen, no unclosed session.

The emulators run in this process, so a Cloud Run call can be made slow on purpose:
the job is seen running (its row is `doing`) before the signal is sent."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
import pytest_asyncio

from bot.catalog import load_catalog
from bot.config import Settings
from bot.jobs_names import LIST_REVISIONS, VERIFY_NOW
from bot.runtime import Runtime, serve_http
from integrations.emulators.google import methods
from integrations.emulators.launcher import EmulatedWorld
from tests.e2e.test_cli import ROOT, TARGET_REVISION, Proc, _clean_env, _free_port, _wait_healthy

pytestmark = pytest.mark.slow

CHANNEL = "C0INCIDENT"
UNCLEAN = ("Traceback", "AppNotOpen", "Unclosed client session", "Unclosed connector",
           "Task was destroyed", "Task exception was never retrieved", "unhandled exception")
SLOW = 30.0  # a Cloud Run call this slow outlasts any grace given below
EXIT_WITHIN = 15.0  # a 1 s grace, plus start-up that may still be going on, loaded


def _env(world: EmulatedWorld, database_url: str, redis_url: str, **extra: str
         ) -> dict[str, str]:
    return _clean_env(**world.env(), DATABASE_URL=database_url, REDIS_URL=redis_url,
                      ROLLBOT_SLACK_POST_INTERVAL="0.01", **extra)


async def _jobs(database_url: str, task: str) -> list[tuple[str, int]]:
    """(status, attempts) of every job of `task`; a successful one is deleted."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT status::text, attempts FROM procrastinate_jobs WHERE task_name = %s "
            "ORDER BY id", (task,))
        return [(str(status), int(attempts)) for status, attempts in await cur.fetchall()]


async def _until_running(database_url: str, task: str, proc: Proc) -> None:
    deadline = time.monotonic() + 20
    while await _jobs(database_url, task) != [("doing", 0)]:
        assert proc.alive(), f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log()}"
        assert time.monotonic() < deadline, f"the {task} job never ran:\n{proc.log()}"
        await asyncio.sleep(0.05)


def _revision_lists(world: EmulatedWorld) -> int:
    """Answers of `/rollback api` (a list_revisions job) the Slack emulator received."""
    return sum(TARGET_REVISION in str(call.args) for call in world.slack.calls_to("response_url"))


async def _terminate(proc: Proc) -> tuple[int, str]:
    """SIGTERM, as Cloud Run sends it; the exit code and all of stderr."""
    proc.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.proc.wait(), EXIT_WITHIN)
    proc.stderr.seek(0)
    return code, proc.stderr.read().decode(errors="replace")


def _assert_clean(code: int, stderr: str) -> None:
    assert code == 0, f"exit {code}:\n{stderr[-4000:]}"
    for marker in UNCLEAN:
        assert marker not in stderr, f"{marker!r} on stderr:\n{stderr[-4000:]}"


async def _stop_mid_list(proc: Proc, world: EmulatedWorld, events_url: str,
                         database_url: str) -> None:
    """Ask for a revision list, SIGTERM `proc` while its job runs, and require a clean
    exit (the process is stopped whatever happens)."""
    try:
        await _ask_for_revisions(world, events_url)
        await _until_running(database_url, LIST_REVISIONS, proc)
        code, stderr = await _terminate(proc)
    finally:
        await proc.stop()
    _assert_clean(code, stderr)


async def _ask_for_revisions(world: EmulatedWorld, events_url: str) -> None:
    ack = await world.slack.send_command(events_url, "api", user_id="U0ALICE",
                                         channel_id=CHANNEL)
    assert ack.status == 200, ack.body


# --- rollbot serve: SIGTERM to the listener, the job in its worker process -------------


async def _serve(env: dict[str, str]) -> tuple[Proc, str]:
    port = _free_port()
    serve = await Proc.start("serve", "--host", "127.0.0.1", env=env | {"PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await _wait_healthy(http, f"{base}/healthz", serve, within=20)
    except BaseException:
        await serve.stop()
        raise
    return serve, f"{base}/slack/events"


async def test_serve_stopped_mid_job_lets_it_finish_within_the_grace(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str,
) -> None:
    emulated.google.faults.delay(methods.LIST_REVISIONS, 2.0, count=1)
    # The default grace (8 s) and one worker process, as shipped.
    serve, events_url = await _serve(_env(emulated, database_url, fresh_redis_url))
    await _stop_mid_list(serve, emulated, events_url, database_url)
    assert _revision_lists(emulated) == 1  # answered before the worker stopped
    assert await _jobs(database_url, LIST_REVISIONS) == []  # done, hence deleted


async def test_serve_stopped_mid_job_queues_it_again_past_the_grace(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str,
) -> None:
    emulated.google.faults.delay(methods.LIST_REVISIONS, SLOW, count=1)
    serve, events_url = await _serve(_env(emulated, database_url, fresh_redis_url,
                                          ROLLBOT_SHUTDOWN_GRACE_SECONDS="1"))
    await _stop_mid_list(serve, emulated, events_url, database_url)
    assert _revision_lists(emulated) == 0
    # Back in the queue for any replica, its first attempt counted.
    assert await _jobs(database_url, LIST_REVISIONS) == [("todo", 1)]


# --- rollbot worker: a listener here, the worker in its own process --------------------


@pytest_asyncio.fixture
async def listener(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str,
) -> AsyncIterator[str]:
    """A listener-only Runtime in this process; yields its events URL."""
    settings = Settings(**_env(emulated, database_url, fresh_redis_url))  # type: ignore[arg-type]
    runtime = await Runtime.start(settings, load_catalog(emulated.catalog_path),
                                  run_worker=False)
    runner, url = await serve_http(runtime, "127.0.0.1", 0)
    try:
        yield f"{url}/slack/events"
    finally:
        await runner.cleanup()
        await runtime.stop()


async def test_worker_stopped_mid_job_lets_it_finish_within_the_grace(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str, listener: str,
) -> None:
    emulated.google.faults.delay(methods.LIST_REVISIONS, 2.0, count=1)
    worker = await Proc.start("worker", env=_env(emulated, database_url, fresh_redis_url))
    await _stop_mid_list(worker, emulated, listener, database_url)
    assert _revision_lists(emulated) == 1
    assert await _jobs(database_url, LIST_REVISIONS) == []


async def test_worker_stopped_past_the_grace_leaves_the_job_to_the_next_worker(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str, listener: str,
) -> None:
    emulated.google.faults.delay(methods.LIST_REVISIONS, SLOW, count=1)
    env = _env(emulated, database_url, fresh_redis_url, ROLLBOT_SHUTDOWN_GRACE_SECONDS="1")
    worker = await Proc.start("worker", env=env)
    await _stop_mid_list(worker, emulated, listener, database_url)
    assert await _jobs(database_url, LIST_REVISIONS) == [("todo", 1)]
    assert _revision_lists(emulated) == 0

    # The next worker (here the same kind; in production any replica) runs it.
    successor = await Proc.start("worker", env=env)
    try:
        deadline = time.monotonic() + 20
        while _revision_lists(emulated) == 0:
            assert time.monotonic() < deadline, f"the job was not resumed:\n{successor.log()}"
            await asyncio.sleep(0.1)
        code, stderr = await _terminate(successor)
    finally:
        await successor.stop()
    _assert_clean(code, stderr)
    assert await _jobs(database_url, LIST_REVISIONS) == []


# --- rollbot shell: the script ends while its last command's job runs ------------------


async def test_shell_script_ending_mid_job_exits_cleanly_and_keeps_the_job(
    tmp_path: Path, database_url: str, fresh_redis_url: str,
) -> None:
    script = tmp_path / "verify.rollbot"
    # web's newest revision is broken: its checks poll for the whole 20 s window.
    script.write_text("/rollback verify web\n", encoding="utf-8")
    env = _clean_env(DATABASE_URL=database_url, REDIS_URL=fresh_redis_url,
                     ROLLBOT_SHUTDOWN_GRACE_SECONDS="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "shell", "--script", str(script), cwd=ROOT, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    assert proc.returncode is not None
    _assert_clean(proc.returncode, stdout + stderr)
    assert "Verification of web (medicalcor-web) requested by @alice" in stdout, stdout
    assert await _jobs(database_url, VERIFY_NOW) == [("todo", 1)]
