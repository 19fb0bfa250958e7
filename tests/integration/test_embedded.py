"""The embedded servers really start, isolate, and clean up after themselves (also as root)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as aioredis

from bot.stores import pginstall
from bot.stores.embedded import EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


async def test_postgres_start_query_stop_removes_dir() -> None:
    pg = EmbeddedPostgres()
    await pg.start()
    try:
        assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
        assert pg.pgdata.is_dir()
        assert pg.startup_seconds is not None
        async with await psycopg.AsyncConnection.connect(pg.url) as conn:
            cur = await conn.execute("SELECT current_user, current_setting('fsync')")
            assert await cur.fetchone() == ("postgres", "off")
        assert pg.pid is not None
        if IS_ROOT:  # PostgreSQL refuses root: it must run as the unprivileged user
            assert _proc_uid(pg.pid) == pginstall.run_as().uid  # type: ignore[union-attr]
        data_dir, port = pg.data_dir, pg.port
    finally:
        await pg.stop()
    assert not data_dir.exists()
    assert not pg.running
    assert not _port_open(port)
    await pg.stop()  # idempotent


async def test_redis_start_ping_stop_removes_dir() -> None:
    async with EmbeddedRedis() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            assert await client.ping()
            assert await client.config_get("save") == {"save": ""}
        finally:
            await client.aclose()
        data_dir, port = server.data_dir, server.port
    assert not data_dir.exists()
    assert not _port_open(port)


async def test_parallel_instances_get_distinct_ports() -> None:
    servers = [EmbeddedPostgres(), EmbeddedPostgres(), EmbeddedRedis(), EmbeddedRedis()]
    await asyncio.gather(*(s.start() for s in servers))
    try:
        assert len({s.port for s in servers}) == 4
        assert len({s.data_dir for s in servers}) == 4
    finally:
        await asyncio.gather(*(s.stop() for s in servers))


async def test_keep_leaves_data_dir() -> None:
    pg = EmbeddedPostgres(keep=True)
    await pg.start()
    data_dir = pg.data_dir
    await pg.stop()
    try:
        assert (data_dir / "pgdata" / "PG_VERSION").is_file()
    finally:
        shutil.rmtree(data_dir)


async def test_busy_requested_port_fails_clearly() -> None:
    async with EmbeddedRedis() as first:
        with pytest.raises(RuntimeError, match="in use"):
            await EmbeddedRedis(port=first.port).start()


@pytest.mark.skipif(not IS_ROOT, reason="the copy is only needed when running as root")
async def test_copied_binaries_run_as_unprivileged_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A venv under /root (mode 700) is unreadable to `nobody`: run from a /tmp copy."""
    who = pginstall.run_as()
    assert who is not None
    private = Path(tempfile.mkdtemp())  # mode 700, owned by root
    assert not pginstall.tree_readable([private], who)

    cache_root = Path(tempfile.mkdtemp())
    cache_root.chmod(0o755)
    try:
        bin_dir = pginstall.pg_bin_dir(who, force_copy=True, cache_root=cache_root)
        assert bin_dir.is_relative_to(cache_root)
        assert pginstall.tree_readable([bin_dir.parent], who)
        # Reused, not re-copied (the copy is published with an atomic rename).
        assert pginstall.copy_pginstall(pginstall.pg_package_dir(), cache_root) == (
            bin_dir.parents[2]
        )
        assert [p.name for p in cache_root.iterdir()] == [bin_dir.parents[2].name]

        # initdb needs libpq through a relative RPATH: a full start proves the layout.
        monkeypatch.setattr(pginstall, "pg_bin_dir", lambda _who: bin_dir)
        async with EmbeddedPostgres() as pg:
            async with await psycopg.AsyncConnection.connect(pg.url) as conn:
                cur = await conn.execute("SELECT 1")
                assert await cur.fetchone() == (1,)
    finally:
        shutil.rmtree(cache_root)
        shutil.rmtree(private)


_CHILD = """
import asyncio, os, sys
from bot.stores.embedded import EmbeddedPostgres, EmbeddedRedis

async def main():
    pg, rd = EmbeddedPostgres(), EmbeddedRedis()
    await asyncio.gather(pg.start(), rd.start())
    print(pg.pid, rd.pid, pg.data_dir, rd.data_dir, flush=True)
    if sys.argv[1] == "sigkill":
        os.kill(os.getpid(), 9)
    # "exit": leave without stop(); atexit must clean up

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # dead, waiting for init to reap it


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "sigkill"])
async def test_servers_do_not_outlive_their_process(how: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, how, cwd=ROOT, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    pg_pid, rd_pid, pg_dir, rd_dir = out.decode().split()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(_gone(int(p)) for p in (pg_pid, rd_pid)) and not any(
            Path(d).exists() for d in (pg_dir, rd_dir)
        ):
            break
        await asyncio.sleep(0.05)
    assert _gone(int(pg_pid)) and _gone(int(rd_pid))
    assert not Path(pg_dir).exists() and not Path(rd_dir).exists()
