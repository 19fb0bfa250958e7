"""`rollbot shell` as a person runs it: one process, the demo script, a pipe on stdin.

Each run starts its own emulators and embedded Postgres/Redis on 127.0.0.1; after
exit, nothing it started may still run or listen.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "docs" / "demo.rollbot"
STORE_URL = re.compile(r"(?:postgresql://\S+@|redis://)127\.0\.0\.1:(\d+)/")

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """Our environment minus anything rollbot reads, so embedded stores start."""
    drop = {"DATABASE_URL", "REDIS_URL", "SLACK_API_URL", "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "ROLLBOT_GCP_EMULATOR_HOST",
            "ROLLBOT_CONFIG", "PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT", "NO_COLOR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _shell(*args: str, stdin: str | None = None,
           timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "shell", *args], cwd=ROOT, env=_env(), input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL, capture_output=True,
        text=True, timeout=timeout, check=False)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _assert_stores_gone(stdout: str) -> None:
    ports = [int(p) for p in STORE_URL.findall(stdout)]
    assert len(ports) == 2, f"no Postgres/Redis URLs in the banner:\n{stdout[:2000]}"
    for port in ports:
        assert not _port_open(port), f"an embedded server still listens on {port}"


def test_demo_script_rolls_back_and_exits_0() -> None:
    result = _shell("--script", str(DEMO), timeout=180)
    out = result.stdout
    assert result.returncode == 0, f"exit {result.returncode}\n{out}\n{result.stderr[-4000:]}"
    for expected in ("Rollback plan", "needs a second person",
                     "Initiating rollback of api to revision medicalcor-api-00014-def",
                     "Rollback verified", "[1] Confirm rollback  [2] Gradual  [3] Cancel",
                     "(only visible to you)", "  ↳ "):
        assert expected in out, f"{expected!r} not in the transcript:\n{out}"
    assert "<@U0" not in out and "\x1b[" not in out  # mentions resolved, no colours
    assert "requested by @alice, confirmed by @bob" in out
    # Every change kind of the demo world: image, env, their views, restore latest,
    # a gradual rollback.
    for expected in ("Initiating rollback of web to image v1.2.2",
                     "medicalcor-web-rb-2 100%, as asked", "Going back to",
                     "keys that differ", "`medicalcor-api-00015-abc`: ••••",
                     "Rollback plan: web → env LOG_LEVEL", "DRY RUN — Rollback plan: api → LATEST",
                     "Step 1/2: 50% to `medicalcor-web-00013-pqr`", "Analysis 1",
                     "[1] Promote now  [2] Pause  [3] Abort",
                     # secrets: who reads which version; a rotated secret blocks, and
                     # the blocked card (in the channel) offers to re-enable it first
                     "Secret API_SECRET_KEY: 2 versions", "Secrets were rotated",
                     "[1] Override blocker  [2] Re-enable the old version  [3] Cancel",
                     "gcloud secrets versions enable 1 --secret=API_SECRET_KEY",
                     # an approver's override: the form, its refusal, the announcement
                     "▣ Override blocker (a form only you see)",
                     "✎ Say why in at least 10 characters",
                     "@bob overrode the blockers of rollback",
                     "DRY RUN — Rollback plan: secret API_SECRET_KEY → version 1",
                     # the application's switches: a flag off, a kill switch pulled on
                     "🟢 on · `new-scoring-model` · app", "Turning flag `new-scoring-model` off",
                     "Turning kill switch `ai_scoring` on", "🔴 ON · `ai_scoring` · app"):
        assert expected in out, f"{expected!r} not in the transcript:\n{out}"
    # The rollout's chart, shared into the thread: shown with where it was saved.
    charts = re.findall(r"📎 (gradual-\d+-final\.png) \(saved to (\S+)\)", out)
    assert charts, f"no chart in the transcript:\n{out}"
    assert Path(charts[0][1]).read_bytes().startswith(b"\x89PNG")
    assert "whk_live" not in out  # secret-looking values never shown
    _assert_stores_gone(out)


def test_failing_wait_exits_nonzero_and_stops_the_script(tmp_path: Path) -> None:
    script = tmp_path / "fail.rollbot"
    script.write_text("# a wait that can never succeed\n\n:wait something rollbot never says 1\n"
                      ":as bob\n", encoding="utf-8")
    result = _shell("--script", str(script), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "timed out after 1 s" in result.stdout
    assert "you are now @bob" not in result.stdout  # the script stopped at the failed wait
    _assert_stores_gone(result.stdout)


def test_missing_script_is_a_usage_error(tmp_path: Path) -> None:
    result = _shell("--script", str(tmp_path / "nope.rollbot"), timeout=30)
    assert result.returncode == 2 and "no such script" in result.stderr


def test_repl_over_a_pipe_answers_and_quits_quickly() -> None:
    started = time.monotonic()
    result = _shell(stdin=":who\n:as bob\nhelp\n:quit\n/rollback never sent\n", timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    out = result.stdout
    assert "ready in" in out and "#inc-demo" in out
    assert "You are @alice (U0ALICE" in out and "(you are now @bob)" in out
    assert "rollbot (only visible to you):" in out and "quick reference" in out
    assert "never sent" not in out.split("bob> :quit", 1)[1]
    assert elapsed < 30, f"start, three commands and :quit took {elapsed:.1f}s"
    _assert_stores_gone(out)


def test_end_of_input_exits_0() -> None:
    result = _shell(stdin="", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_stores_gone(result.stdout)


def test_ctrl_c_stops_everything_it_started() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "shell"], cwd=ROOT, env=_env(), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while len(STORE_URL.findall("".join(lines))) < 2:
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "no banner:\n" + "".join(lines)
            lines.append(line)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the embedded servers should be child processes"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert code == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after the shell exited: {alive}"
    _assert_stores_gone("".join(lines))
