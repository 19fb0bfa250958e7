"""`rollbot shell`: try rollbot in one command, no Slack workspace or GCP project.

Starts the emulated world (Slack, Cloud Run, the target app, embedded Postgres and
Redis) and the bot in this process, then reads lines as if typed in Slack and shows
what the bot says, rendered for a terminal (Hubot's shell adapter, Errbot's text
backend). `--script FILE` replays a file of lines and exits non-zero on a problem.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

__all__ = ["main"]


def main(script: Path | None = None, *, keep: bool = False) -> int:
    """Run the shell; the exit status (0 fine, 1 a problem in script mode, 130 Ctrl-C
    before start-up finished)."""
    from bot.shell.repl import run

    if "LOG_LEVEL" not in os.environ:  # the conversation is the output; logs only if bad
        logging.getLogger().setLevel(logging.WARNING)
    lines = script.read_text(encoding="utf-8").splitlines() if script is not None else None
    return asyncio.run(run(lines, keep=keep))
