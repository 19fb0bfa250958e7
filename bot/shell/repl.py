"""The shell's loop: read a line, act as the current user, show what the bot says.

Interactive (a terminal or a pipe on stdin) or scripted (`--script FILE`: one input
line per line, `:wait` / `:sleep` for pacing, exit status 1 when the bot reported an
error, a `:wait` timed out or something raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from bot.shell import forms
from bot.shell.choices import ChoiceRegistry
from bot.shell.follow import Follower, Transcript
from bot.shell.render import Style, button_label
from bot.shell.session import CHANNEL_ID, CHANNEL_NAME, ShellSession

DEFAULT_USER = "U0ALICE"
WAIT_DEFAULT_SECONDS = 30.0
_COMMAND = re.compile(r"^/?(rollback|flag|killswitch)\b\s*", re.I)

HELP = """\
Type what you would type in Slack; everything goes to rollbot as a signed slash
command from the current user in #{channel}:
  /rollback                    quick reference (also: help)
  /rollback api                recent revisions of api, a button each
  /rollback api 00014-def      propose a rollback: a plan card, a teammate confirms
  /rollback api 00014-def --dry-run · /rollback history api
  /rollback api 00014-def --gradual   50% first, analysed, then 100% (Pause/Abort/Promote)
  /flag list · /flag off new-scoring-model · /killswitch list · /killswitch ai_scoring on
  ("rollback api" and plain "api 00014-def" work too)
  1, 2, …                      click that button of the latest message with buttons
Shell commands:
  :as NAME      act as alice, bob or carol (or a user id); bob and carol may confirm
  :who          who you are and who is around
  :wait TEXT [SECONDS]   wait until rollbot says TEXT (default {wait:.0f} s)
  :sleep SECONDS
  :submit TEXT  answer the form rollbot opened for you (e.g. Override blocker's reason)
  :close        close that form without answering
  :help · :quit (or Ctrl-D, Ctrl-C)"""


class LineReader:
    """stdin lines on an asyncio queue, read by a daemon thread with os.read: no
    Python-level stdin lock is held, so exiting never waits for a pending read."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="rollbot-shell-stdin", daemon=True).start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(0, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                self._put(line.decode(errors="replace").rstrip("\r"))
        if pending:
            self._put(pending.decode(errors="replace"))
        self._put(None)

    def _put(self, line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: we are exiting
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line)

    async def readline(self) -> str | None:
        """The next line, or None at end of input."""
        return await self._queue.get()


class Console:
    """Prints output; on a terminal, redraws the prompt under output that arrived
    while it was showing."""

    def __init__(self, out: TextIO, *, interactive_tty: bool) -> None:
        self.out = out
        self.tty = interactive_tty
        self.prompt: str | None = None

    def emit(self, lines: list[str]) -> None:
        if self.prompt is not None and self.tty:
            self.out.write("\r\x1b[K")
        self.out.write("".join(line + "\n" for line in lines))
        if self.prompt is not None and self.tty:
            self.out.write(self.prompt)
        self.out.flush()

    def show_prompt(self, prompt: str) -> None:
        self.prompt = prompt
        if self.tty:
            self.out.write(prompt)
            self.out.flush()

    def hide_prompt(self) -> None:
        self.prompt = None


class Shell:
    def __init__(self, session: ShellSession, console: Console, *, style: Style,
                 scripted: bool, ask: Callable[[str], Awaitable[str | None]] | None = None,
                 ) -> None:
        self.session = session
        self.console = console
        self.style = style
        self.scripted = scripted
        self.user_id = DEFAULT_USER
        self.registry = ChoiceRegistry()
        self.transcript = Transcript(console.emit)
        self.follower = Follower(session.world.slack, self.transcript, self.registry,
                                 style=style, acting_user=lambda: self.user_id,
                                 channel_id=CHANNEL_ID)
        self._ask = ask
        self._pending: set[asyncio.Task[None]] = set()

    # --- people -----------------------------------------------------------------------
    @property
    def user_name(self) -> str:
        return self.follower.directory().user(self.user_id)

    def prompt(self) -> str:
        return f"{self.user_name}> "

    def _find_user(self, ref: str) -> str | None:
        ref = ref.strip().lstrip("@")
        users = self.session.world.slack.store.users
        if ref.upper() in users and not users[ref.upper()].is_bot:
            return ref.upper()
        return next((u.id for u in users.values()
                     if not u.is_bot and ref.casefold() in (u.name.casefold(),
                                                            u.real_name.casefold())), None)

    # --- lines ------------------------------------------------------------------------
    async def handle(self, line: str) -> bool:
        """Act on one input line; False means quit."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        try:
            if line.startswith(":"):
                return await self._shell_command(line)
            if line.isdigit():
                await self._click(int(line))
            else:
                await self._command(line)
        except Exception as exc:
            self.transcript.fail(self.style.red(f"rollbot shell: {type(exc).__name__}: {exc}"))
        return True

    async def _shell_command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        name, rest = name.lower(), rest.strip()
        if name in (":quit", ":q", ":exit"):
            return False
        if name in (":help", ":h", ":?"):
            self.transcript.note(HELP.format(channel=CHANNEL_NAME, wait=WAIT_DEFAULT_SECONDS))
        elif name == ":as":
            self._switch_user(rest)
        elif name == ":who":
            self._who()
        elif name == ":wait":
            await self._wait(rest)
        elif name == ":sleep":
            await asyncio.sleep(float(rest or 1))
        elif name == ":submit":
            await forms.submit(self.session, self.transcript, self.style, user_id=self.user_id,
                               user_name=self.user_name, text=rest)
        elif name == ":close":
            forms.close(self.session, self.transcript, user_id=self.user_id)
        else:
            self.transcript.note(f"unknown shell command {name}; :help lists them")
        return True

    def _switch_user(self, ref: str) -> None:
        user_id = self._find_user(ref) if ref else None
        if user_id is None:
            names = ", ".join(u.name for u in self.session.world.slack.store.users.values()
                              if not u.is_bot)
            self.transcript.note(f"no such user {ref!r}; try one of: {names}")
            return
        self.user_id = user_id
        self.transcript.note(f"(you are now @{self.user_name})")

    def _who(self) -> None:
        store = self.session.world.slack.store
        user = store.users[self.user_id]
        people = ", ".join(f"{u.name} ({u.id})" for u in store.users.values() if not u.is_bot)
        catalog = self.session.runtime.deps.catalog
        approvers = sorted({a for svc in catalog.services.values() for a in svc.approvers})
        names = ", ".join("@" + self.follower.directory().user(a) for a in approvers)
        self.transcript.note(
            f"You are @{user.name} ({user.id}, {user.real_name or user.name}) in #{CHANNEL_NAME}.",
            f"People: {people}. Who may confirm rollbacks: {names or 'anyone'}.")

    async def _wait(self, rest: str) -> None:
        text, timeout = rest, WAIT_DEFAULT_SECONDS
        words = rest.rsplit(" ", 1)
        if len(words) == 2 and re.fullmatch(r"\d+(\.\d+)?", words[1]):
            text, timeout = words[0], float(words[1])
        if not text:
            self.transcript.note("usage: :wait TEXT [SECONDS]")
            return
        if not await self.transcript.wait_for_text(text, timeout):
            self.transcript.fail(self.style.red(
                f"⏱ :wait timed out after {timeout:g} s: rollbot never said {text!r}"))

    async def _command(self, line: str) -> None:
        found = _COMMAND.match(line)
        if line.startswith("/") and not found:
            self.transcript.note("only /rollback, /flag and /killswitch are installed in "
                                 "this workspace")
            return
        command = f"/{found.group(1).lower()}" if found else "/rollback"
        text = _COMMAND.sub("", line, count=1)
        result = await self.session.send_command(text, user_id=self.user_id, command=command)
        self.follower.show_ack(result, channel_id=CHANNEL_ID, user_id=self.user_id)

    async def _click(self, number: int) -> None:
        choice = self.registry.get(number)
        if choice is None:
            current = self.registry.current
            self.transcript.note(
                f"no button [{number}]; " + ("the latest message offers: " + "  ".join(
                    button_label(c.number, c.button) for c in current) if current
                    else "no message with buttons yet"))
            return
        if choice.visible_to and choice.visible_to != self.user_id:
            owner = self.follower.directory().user(choice.visible_to)
            self.transcript.note(f"only @{owner} can see that message: `:as {owner}` first")
            return
        confirm = choice.button.confirm
        if confirm is not None and not await self._confirmed(confirm.question()):
            self.transcript.note(f"({confirm.deny}: not clicked)")
            return
        self.transcript.note(self.style.dim(
            f"(@{self.user_name} clicks “{choice.button.label}”)"))
        result = await self.session.click(choice, user_id=self.user_id)
        if result.status != 200:
            self.transcript.fail(self.style.red(
                f"⚠ rollbot answered the click with HTTP {result.status}: {result.body[:300]}"))

    async def _confirmed(self, question: str) -> bool:
        if self.scripted or self._ask is None:
            self.transcript.note(question + "y  (script: yes)")
            return True
        answer = await self._ask(question)
        return (answer or "").strip().lower() in ("y", "yes")


# --- running --------------------------------------------------------------------------


def banner(session: ShellSession, style: Style) -> list[str]:
    world = session.world
    services = ", ".join(f"{name.removeprefix('medicalcor-')} ({name})"
                         for name in world.world.services)
    return [
        style.bold(f"rollbot shell — rollbot and a pretend world in one process "
                   f"(ready in {session.started_in:.1f} s)"),
        f"  Slack       emulated workspace; you are @alice in #{CHANNEL_NAME} "
        "(also here: @bob, @carol)",
        f"  Cloud Run   emulated project {world.world.project}: {services};",
        "              the newest revisions are broken: /health fails until you roll back",
        f"  target app  {world.target.url}/medicalcor-api/health",
        f"  Postgres    {world.database_url}",
        f"  Redis       {world.redis_url}",
        f"              {session.stores}",
        "Try /rollback api, then /rollback api 00014-def. A number clicks that button of the",
        "latest message; :as bob acts as bob (a second person must confirm) · :who · :help · "
        ":quit",
    ]


class _Stop:
    """Ctrl-C / SIGTERM as an event the loop can wait on next to its input."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._signals: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.event.set)
                self._signals.append(sig)

    async def race(self, work: asyncio.Future[Any]) -> tuple[bool, Any]:
        """(stopped, result of work)."""
        stopper = asyncio.ensure_future(self.event.wait())
        done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if work in done:
            return False, work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return True, None


async def run(script: list[str] | None, *, keep: bool, out: TextIO = sys.stdout) -> int:
    """The shell: interactive on stdin, or the lines of a script."""
    stop = _Stop()
    tty = out.isatty() and script is None and sys.stdin.isatty()
    style = Style(color=tty and not os.environ.get("NO_COLOR"))
    session_task = asyncio.ensure_future(ShellSession.start(keep=keep))
    stopped, session = await stop.race(session_task)
    if stopped:
        return 130
    console = Console(out, interactive_tty=tty)
    reader = LineReader() if script is None else None

    async def ask(question: str) -> str | None:
        console.show_prompt(question)
        try:
            return await reader.readline() if reader else None
        finally:
            console.hide_prompt()

    shell = Shell(session, console, style=style, scripted=script is not None, ask=ask)
    follower = asyncio.create_task(shell.follower.run(), name="rollbot-shell-follower")
    code = 0
    try:
        console.emit(banner(session, style))
        if script is not None:
            code = await _run_script(shell, script, stop)
        else:
            code = await _run_interactive(shell, console, reader, stop)
    finally:
        shell.follower.poll()
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await session.stop()
    return code


async def _run_script(shell: Shell, script: list[str], stop: _Stop) -> int:
    for raw in script:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        shell.transcript.note(f"{shell.prompt()}{line}")
        before = len(shell.transcript.errors)
        stopped, go_on = await stop.race(asyncio.ensure_future(shell.handle(line)))
        if stopped:
            return 130
        if not go_on:
            break
        if line.startswith(":wait") and len(shell.transcript.errors) > before:
            shell.transcript.note("(stopping the script: that :wait failed)")
            break
    await stop.race(asyncio.ensure_future(shell.transcript.wait_quiet(1.0, 10.0)))
    shell.follower.poll()
    if shell.transcript.errors:
        shell.transcript.note(f"rollbot shell: {len(shell.transcript.errors)} problem(s):",
                              *("  " + e for e in shell.transcript.errors))
        return 1
    return 0


async def _run_interactive(shell: Shell, console: Console, reader: LineReader | None,
                           stop: _Stop) -> int:
    assert reader is not None
    while True:
        console.show_prompt(shell.prompt())
        stopped, line = await stop.race(asyncio.ensure_future(reader.readline()))
        console.hide_prompt()
        if stopped or line is None:
            if console.tty:
                console.emit([""])
            return 0
        if not console.tty:  # piped input: echo, so the output reads as a transcript
            shell.transcript.note(f"{shell.prompt()}{line}")
        stopped, go_on = await stop.race(asyncio.ensure_future(shell.handle(line)))
        if stopped or not go_on:
            return 0
