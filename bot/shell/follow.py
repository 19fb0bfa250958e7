"""What the bot says, as it says it: the Slack emulator's recorded calls → terminal text.

`Follower` polls the emulator's call log and turns each chat.postMessage,
chat.update, chat.postEphemeral and response_url post into an `Output`: top-level
messages as `rollbot: …`, thread replies indented under their parent (`  ↳ …`),
edits as a compact `(updated)` diff, ephemeral ones marked `(only visible to you)`.
`Transcript` keeps them for `:wait`, the quiet-period check and the script's exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.shell.choices import ChoiceRegistry
from bot.shell.render import (
    Directory,
    Rendered,
    Style,
    render_message,
    strip_ansi,
)
from integrations.emulators.slack import SlackCall, SlackEmulator
from integrations.emulators.slack.delivery import ACK_DEADLINE_SECONDS, DeliveryResult

MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral",
                             "response_url", "files.completeUploadExternal", "views.open"})
# Where files rollbot shares (a gradual rollout's charts) are saved to be opened.
FILES_DIR = Path(tempfile.gettempdir()) / "rollbot-shell-files"
_BUTTON_LINE = re.compile(r"\[\d+\] ")


def is_error_text(text: str) -> bool:
    """A channel message that reports a failure (ephemeral refusals are not counted:
    they answer a person's own mistake; nor is a blocked plan card: the runbook's
    blockers doing their job)."""
    if "⛔ Blocked" in text:
        return False
    return "❌" in text or "⚠" in text or ":warning:" in text


@dataclasses.dataclass
class Output:
    lines: list[str]  # styled, ready to print
    from_bot: bool = True
    error: bool = False

    @property
    def text(self) -> str:
        return strip_ansi("\n".join(self.lines))


class Transcript:
    """Everything shown, in order; what `:wait` searches and the exit code reads."""

    def __init__(self, emit: Callable[[list[str]], None]) -> None:
        self.outputs: list[Output] = []
        self.errors: list[str] = []
        self._emit = emit
        self._cursor = 0  # `:wait` searches bot output from here on
        self._changed = asyncio.Event()
        self.last_activity = time.monotonic()

    def add(self, output: Output) -> None:
        self.outputs.append(output)
        if output.error:
            self.errors.append(output.text.split("\n", 1)[0])
        self._emit(output.lines)
        self.touch()

    def note(self, *lines: str) -> None:
        """The shell's own words (not the bot's): help, prompts, echoes."""
        self.add(Output(list(lines), from_bot=False))

    def fail(self, *lines: str) -> None:
        """Something went wrong outside the bot's messages (timeouts, exceptions)."""
        self.add(Output(list(lines), from_bot=False, error=True))

    def touch(self) -> None:
        self.last_activity = time.monotonic()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for_text(self, text: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Until bot output after the previous match contains `text` (any case)."""
        needle = text.casefold()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i in range(self._cursor, len(self.outputs)):
                out = self.outputs[i]
                if out.from_bot and needle in out.text.casefold():
                    self._cursor = i + 1
                    return True
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return False

    async def wait_quiet(self, quiet: float = 1.0, limit: float = 10.0) -> None:
        """Until nothing happened for `quiet` seconds (at most `limit` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            idle = time.monotonic() - self.last_activity
            if idle >= quiet:
                return
            await asyncio.sleep(min(quiet - idle, deadline - loop.time()) + 0.01)


@dataclasses.dataclass
class _Known:
    channel_id: str
    thread_ts: str | None
    plain: list[str]


class Follower:
    def __init__(self, slack: SlackEmulator, transcript: Transcript, registry: ChoiceRegistry,
                 *, style: Style, acting_user: Callable[[], str], channel_id: str,
                 files_dir: Path = FILES_DIR) -> None:
        self.slack = slack
        self.files_dir = files_dir
        self.transcript = transcript
        self.registry = registry
        self.style = style
        self.acting_user = acting_user
        self.channel_id = channel_id
        self._seen = 0
        self._known: dict[str, _Known] = {}
        self._claimed: set[str] = set()  # stored message ts already shown

    def directory(self) -> Directory:
        store = self.slack.store
        return Directory(
            users={u.id: u.name for u in store.users.values()},
            groups={g.id: g.handle for g in store.usergroups.values()},
            channels={c.id: c.name for c in store.channels.values()},
        )

    async def run(self, interval: float = 0.05) -> None:
        while True:
            self.poll()
            await asyncio.sleep(interval)

    def poll(self) -> None:
        calls = self.slack.calls
        self._seen = min(self._seen, len(calls))
        while self._seen < len(calls):
            call = calls[self._seen]
            self._seen += 1
            self.transcript.touch()
            try:
                self.handle(call)
            except Exception as exc:  # never let one odd call stop the output
                self.transcript.fail(f"(rollbot shell could not show a {call.method} call: "
                                     f"{type(exc).__name__}: {exc})")

    # --- calls ------------------------------------------------------------------------
    def handle(self, call: SlackCall) -> None:
        if call.method not in MESSAGE_METHODS:
            return
        if not call.ok:
            detail = call.response.get("error") or f"HTTP {call.http_status}"
            problems = (call.response.get("response_metadata") or {}).get("messages") or []
            extra = f" ({'; '.join(map(str, problems))[:300]})" if problems else ""
            self.transcript.add(Output([self.style.red(
                f"⚠ Slack rejected rollbot's {call.method}: {detail}{extra}")], error=True))
            return
        args = call.args
        if call.method == "chat.postMessage":
            self.show_new(channel_id=str(call.response.get("channel") or args.get("channel")),
                          ts=str(call.response.get("ts")), message=args,
                          thread_ts=args.get("thread_ts") or None)
        elif call.method == "chat.update":
            self.show_update(channel_id=str(call.response.get("channel") or args["channel"]),
                             ts=str(args["ts"]), message=args)
        elif call.method == "files.completeUploadExternal":
            self._files(call)
        elif call.method == "views.open":
            self._modal(call.response.get("view") or {})
        elif call.method == "chat.postEphemeral":
            self.show_new(channel_id=str(args.get("channel")),
                          ts=str(call.response.get("message_ts") or ""), message=args,
                          ephemeral_to=str(args.get("user")))
        else:
            self._response_url(args)

    def _modal(self, view: Mapping[str, Any]) -> None:
        """A form rollbot opened (e.g. Override blocker): its text, its inputs, and how
        to answer it from the shell."""
        blocks = [b for b in view.get("blocks") or [] if b.get("type") != "input"]
        rendered = render_message({"blocks": blocks}, self.directory(), self.style)
        inputs = [str((b.get("label") or {}).get("text", "")) for b in view.get("blocks") or []
                  if b.get("type") == "input"]
        title = str((view.get("title") or {}).get("text", "form"))
        lines = [self.style.bold(f"▣ {title} (a form only you see)"),
                 *("  " + line for line in rendered.lines),
                 *(f"  ✎ {label}" for label in inputs),
                 self.style.dim("  answer with  :submit <text>   or   :close")]
        self.transcript.add(Output(lines))

    def _files(self, call: SlackCall) -> None:
        """A shared file: its name and where its bytes were saved, to open them."""
        thread_ts = call.args.get("thread_ts") or None
        lines = []
        for shared in call.response.get("files") or []:
            content = self.slack.api.files.content(str(shared.get("id")))
            name = Path(str(shared.get("name") or "file")).name  # never a path of Slack's
            if content is None:
                lines.append(f"📎 {name} (not uploaded)")
                continue
            self.files_dir.mkdir(parents=True, exist_ok=True)
            path = self.files_dir / name
            path.write_bytes(content)
            lines.append(f"📎 {name} (saved to {path})")
        comment = str(call.args.get("initial_comment") or "")
        if comment:
            lines.append(comment)
        head = self._head(str(call.args.get("channel_id")), None, updated=False)
        self.transcript.add(Output(self._compose(head, lines, thread_ts)))

    def _response_url(self, args: Mapping[str, Any]) -> None:
        target_id = str(args.get("response_url", "")).rstrip("/").rsplit("/", 1)[-1]
        target = self.slack.store.response_targets.get(target_id)
        if target is None:
            return
        original = target.message_ts
        if str(args.get("delete_original")).lower() in ("true", "1"):
            if original:
                self.registry.withdraw(channel_id=target.channel_id, message_ts=original)
            self.transcript.add(Output([self.style.dim("rollbot deleted a message")]))
            return
        if str(args.get("replace_original")).lower() in ("true", "1") and original:
            self.show_update(channel_id=target.channel_id, ts=original, message=args)
            return
        in_channel = args.get("response_type") == "in_channel"
        ts = self._stored_ts(target.channel_id, args)
        self.show_new(channel_id=target.channel_id, ts=ts, message=args,
                      thread_ts=args.get("thread_ts") or None,
                      ephemeral_to=None if in_channel else target.user_id)

    def _stored_ts(self, channel_id: str, message: Mapping[str, Any]) -> str | None:
        """The ts the emulator gave a message posted through a response_url."""
        blocks, text = message.get("blocks") or [], str(message.get("text") or "")
        for stored in reversed(self.slack.messages(channel_id)):
            if stored["ts"] in self._claimed:
                continue
            if (stored.get("blocks") or []) == blocks and stored.get("text", "") == text:
                self._claimed.add(stored["ts"])
                return str(stored["ts"])
        return None

    def show_ack(self, result: DeliveryResult, *, channel_id: str, user_id: str) -> None:
        """A slash command's HTTP answer, shown as Slack shows it."""
        if result.status != 200:
            self.transcript.add(Output([self.style.red(
                f"⚠ rollbot answered HTTP {result.status}: {result.body[:300]}")], error=True))
            return
        if result.elapsed > ACK_DEADLINE_SECONDS:
            self.transcript.note(self.style.yellow(
                f"(rollbot took {result.elapsed:.1f} s to answer; Slack would have shown "
                "\"operation_timeout\")"))
        if not result.body.strip():
            return
        try:
            body = json.loads(result.body)
        except json.JSONDecodeError:
            body = {"text": result.body}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return
        if result.message_ts:
            self._claimed.add(result.message_ts)
        self.show_new(channel_id=channel_id, ts=result.message_ts, message=body,
                      ephemeral_to=None if body.get("response_type") == "in_channel"
                      else user_id)

    # --- showing ----------------------------------------------------------------------
    def _head(self, channel_id: str, ephemeral_to: str | None, updated: bool) -> str:
        parts = ["rollbot"]
        if channel_id != self.channel_id:
            name = self.directory().channels.get(channel_id, channel_id)
            parts.append(f"in #{name}")
        if updated:
            parts.append("(updated)")
        if ephemeral_to:
            who = ("you" if ephemeral_to == self.acting_user()
                   else "@" + self.directory().user(ephemeral_to))
            parts.append(f"(only visible to {who})")
        return self.style.bold(" ".join(parts) + ":")

    def _compose(self, head: str, lines: list[str], thread_ts: str | None) -> list[str]:
        if thread_ts:
            first, *rest = lines or [""]
            return ["  ↳ " + first] + ["    " + line for line in rest]
        if len(lines) == 1 and len(strip_ansi(lines[0])) < 100:
            return [f"{head} {lines[0]}"]
        return [head] + ["  " + line for line in lines]

    def _offer(self, rendered: Rendered, channel_id: str, ts: str | None,
               ephemeral_to: str | None) -> None:
        if rendered.buttons:
            self.registry.offer(rendered.buttons, channel_id=channel_id, message_ts=ts,
                                is_ephemeral=ephemeral_to is not None,
                                visible_to=ephemeral_to)
        elif ts:
            self.registry.withdraw(channel_id=channel_id, message_ts=ts)

    def show_new(self, *, channel_id: str, ts: str | None, message: Mapping[str, Any],
                 thread_ts: str | None = None, ephemeral_to: str | None = None) -> None:
        rendered = render_message(message, self.directory(), self.style)
        if thread_ts == ts:
            thread_ts = None
        if ts:
            self._known[ts] = _Known(channel_id, thread_ts,
                                     [strip_ansi(line) for line in rendered.lines])
        self._offer(rendered, channel_id, ts, ephemeral_to)
        head = self._head(channel_id, ephemeral_to, updated=False)
        error = ephemeral_to is None and is_error_text(rendered.text + str(message.get("text")))
        self.transcript.add(Output(self._compose(head, rendered.lines, thread_ts), error=error))

    def show_update(self, *, channel_id: str, ts: str, message: Mapping[str, Any]) -> None:
        rendered = render_message(message, self.directory(), self.style)
        plain = [strip_ansi(line) for line in rendered.lines]
        known = self._known.get(ts)
        stored = self.slack.store.find(channel_id, ts)
        ephemeral_to = (stored.get("visible_to") if stored and stored.get("is_ephemeral")
                        else None)
        shown = rendered.lines
        if known is not None:
            before = set(known.plain)
            title = next((line for line in rendered.lines if strip_ansi(line).strip()), "")
            changed = [line for line, bare in zip(rendered.lines, plain, strict=True)
                       if bare.strip() and (bare not in before or _BUTTON_LINE.search(bare))
                       and line != title]
            same = not changed and strip_ansi(title) in before
            shown = [title + self.style.dim("  (no visible change)")] if same else [
                title, *changed]
        self._known[ts] = _Known(channel_id, known.thread_ts if known else None, plain)
        self._offer(rendered, channel_id, ts, ephemeral_to)
        head = self._head(channel_id, ephemeral_to, updated=True)
        thread_ts = known.thread_ts if known else None
        lines = self._compose(head, shown, None)
        if thread_ts:
            lines = ["  ↳ " + self.style.dim("(updated) ") + shown[0]] + [
                "    " + line for line in shown[1:]]
        error = ephemeral_to is None and any(is_error_text(strip_ansi(line)) for line in shown)
        self.transcript.add(Output(lines, error=error))
