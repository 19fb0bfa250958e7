"""run_smoke_command: a real subprocess, no shell, bounded output, secrets stripped."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bot.catalog import SmokeCommand
from bot.smoke import (
    LAST_LINES,
    MAX_LINE_CHARS,
    MAX_PARTIAL_BYTES,
    LineTail,
    is_secret_name,
    run_smoke_command,
    smoke_environment,
)


def py(code: str, *, timeout: float = 10, cwd: str | None = None) -> SmokeCommand:
    return SmokeCommand(command=[sys.executable, "-c", textwrap.dedent(code)],
                        timeout_seconds=timeout, cwd=cwd)


async def test_passing_command() -> None:
    result = await run_smoke_command(py("print('3 passed')"))
    assert result.ok and result.exit_code == 0 and not result.timed_out
    assert result.last_lines == ("3 passed",)
    assert 0 < result.duration_s < 10


async def test_failing_exit_code_and_combined_output() -> None:
    result = await run_smoke_command(py("""
        import sys
        print('checking /health', flush=True)
        print('FAIL /api/v1/patients: 500', file=sys.stderr, flush=True)
        sys.exit(3)
    """))
    assert not result.ok and result.exit_code == 3 and not result.timed_out
    assert result.last_lines == ("checking /health", "FAIL /api/v1/patients: 500")


async def test_no_shell_arguments_are_literal(tmp_path: Path) -> None:
    spec = SmokeCommand(command=[sys.executable, "-c", "import sys; print(sys.argv[1])",
                                 "$HOME; echo pwned"], cwd=str(tmp_path))
    result = await run_smoke_command(spec)
    assert result.ok and result.last_lines == ("$HOME; echo pwned",)


async def test_cwd_is_used(tmp_path: Path) -> None:
    result = await run_smoke_command(py("import os; print(os.getcwd())", cwd=str(tmp_path)))
    assert result.last_lines == (str(tmp_path.resolve()),)


async def test_command_that_cannot_start() -> None:
    result = await run_smoke_command(SmokeCommand(command=["/nonexistent/pnpm", "test"]))
    assert not result.ok and result.exit_code is None and not result.timed_out
    assert result.last_lines[0].startswith("cannot start /nonexistent/pnpm")


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie waiting for init


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    result = await run_smoke_command(py(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
    """, timeout=0.8))
    assert time.monotonic() - started < 8
    assert result.timed_out and not result.ok and result.exit_code is None
    assert result.last_lines == ("started",)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the suite's child process survived the timeout"


async def test_exit_is_not_held_up_by_a_leftover_child() -> None:
    started = time.monotonic()
    result = await run_smoke_command(py("""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("done", flush=True)
    """, timeout=30))
    assert result.ok and result.last_lines == ("done",)
    assert time.monotonic() - started < 10


async def test_last_lines_are_the_last_ten_clipped() -> None:
    result = await run_smoke_command(py("""
        for i in range(50):
            print(f"line {i}")
        print()
        print("\\x1b[32m✓\\x1b[0m green")
        print("x" * 5000)
    """))
    assert len(result.last_lines) == LAST_LINES
    assert result.last_lines[:8] == tuple(f"line {i}" for i in range(42, 50))
    assert result.last_lines[8] == "✓ green"
    assert len(result.last_lines[9]) == MAX_LINE_CHARS
    assert result.last_lines[9].endswith("…")
    assert all(len(line) <= MAX_LINE_CHARS for line in result.last_lines)


async def test_output_is_bounded() -> None:
    # 20 MB without a newline, then 200k short lines: only the tail is kept.
    result = await run_smoke_command(py("""
        import sys
        sys.stdout.write("y" * 20_000_000)
        sys.stdout.write("\\n" + "\\n".join(f"row {i}" for i in range(200_000)) + "\\ntail")
    """, timeout=60))
    assert result.ok
    assert result.last_lines[-1] == "tail"
    assert result.last_lines[-2] == "row 199999"


def test_line_tail_memory_is_bounded() -> None:
    tail = LineTail()
    for _ in range(100):
        tail.feed(b"z" * 1_000_000)
        assert tail.buffered_bytes <= MAX_PARTIAL_BYTES
    tail.feed(b"\nlast\n")
    lines = tail.close()
    assert lines[-1] == "last"
    assert len(lines[0]) == MAX_LINE_CHARS and lines[0].endswith("…")


def test_line_tail_splits_across_chunks() -> None:
    tail = LineTail()
    for chunk in (b"hel", b"lo\r\nwor", b"ld\n\n  \n", "é".encode()[:1], "é".encode()[1:]):
        tail.feed(chunk)
    assert tail.close() == ("hello", "world", "é")


@pytest.mark.parametrize(("name", "secret"), [
    ("SLACK_BOT_TOKEN", True), ("SLACK_SIGNING_SECRET", True), ("PGPASSWORD", True),
    ("db_password", True), ("DATABASE_URL", True), ("REDIS_URL", True),
    ("github_token", True), ("PATH", False), ("HOME", False), ("BASE_URL", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_smoke_environment() -> None:
    env = smoke_environment({"PATH": "/bin", "SLACK_BOT_TOKEN": "xoxb-1",
                             "DATABASE_URL": "postgresql://u:p@h/db"},
                            {"BASE_URL": "http://127.0.0.1:8080"})
    assert env == {"PATH": "/bin", "BASE_URL": "http://127.0.0.1:8080"}


async def test_secrets_never_reach_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SLACK_BOT_TOKEN": "xoxb-secret-1", "SLACK_SIGNING_SECRET": "sig-2",
                        "PGPASSWORD": "pw-3", "DATABASE_URL": "postgresql://u:pw-4@h/db",
                        "REDIS_URL": "redis://:pw-5@h", "ROLLBOT_SMOKE_VISIBLE": "yes"}.items():
        monkeypatch.setenv(name, value)
    names = await run_smoke_command(py("""
        import os
        names = sorted(os.environ)
        print(",".join(n for n in names if n in {
            "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "PGPASSWORD", "DATABASE_URL",
            "REDIS_URL", "ROLLBOT_SMOKE_VISIBLE", "BASE_URL"}))
        print(any(v in "|".join(os.environ.values())
                  for v in ("xoxb-secret-1", "sig-2", "pw-3", "pw-4", "pw-5")))
    """), env={"BASE_URL": "http://127.0.0.1:9"})
    assert names.ok
    assert names.last_lines == ("BASE_URL,ROLLBOT_SMOKE_VISIBLE", "False")
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-secret-1"  # ours is untouched
