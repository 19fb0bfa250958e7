"""Block Kit and mrkdwn → readable terminal text.

Pure functions, no I/O: `render_message` turns what the bot sent to Slack into lines
(buttons become numbered choices `[1] Confirm rollback  [2] Cancel`), `mrkdwn` converts
Slack's markup (`*bold*`, `<@U0BOB>`, `<url|label>`, `:warning:`), `Style` adds ANSI
colours on a terminal and nothing anywhere else.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import Any

DIVIDER = "─" * 40
FIELD_COLUMN_MAX = 44  # wider left fields are stacked instead of set in two columns

EMOJI = {
    "warning": "⚠️", "white_check_mark": "✅", "heavy_check_mark": "✔️", "x": "❌",
    "no_entry": "⛔", "no_entry_sign": "🚫", "rotating_light": "🚨", "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳", "arrows_counterclockwise": "🔄",
    "twisted_rightwards_arrows": "🔀", "information_source": "ℹ️", "rocket": "🚀",
    "tada": "🎉", "eyes": "👀", "red_circle": "🔴", "large_green_circle": "🟢",
    "large_yellow_circle": "🟡", "ballot_box_with_check": "☑️", "rewind": "⏪",
    "leftwards_arrow_with_hook": "↩️", "bulb": "💡", "memo": "📝", "lock": "🔒",
    "point_right": "👉", "thumbsup": "👍", "+1": "👍", "fire": "🔥", "stop_sign": "🛑",
    "construction": "🚧", "mag": "🔍", "alarm_clock": "⏰", "stopwatch": "⏱️",
    "robot_face": "🤖", "question": "❓", "exclamation": "❗", "checkered_flag": "🏁",
}

_CODE = re.compile(r"```(.*?)```|`([^`\n]+)`", re.S)
_ANGLE = re.compile(r"<([^<>\n]+)>")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_SHORTCODE = re.compile(r":([a-z0-9_+\-]+):")
_HOLE = re.compile("\x00(\\d+)\x00")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BLOCK_LINE = "\x02"  # marks a code block's lines until _tidy


@dataclasses.dataclass(frozen=True)
class Directory:
    """Names for ids: users (U… → name), user groups (S… → handle), channels (C… → name)."""

    users: Mapping[str, str] = dataclasses.field(default_factory=dict)
    groups: Mapping[str, str] = dataclasses.field(default_factory=dict)
    channels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def user(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)


@dataclasses.dataclass(frozen=True)
class Style:
    """ANSI styling, or none at all (`Style()`: scripts, pipes, tests)."""

    color: bool = False

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def italic(self, text: str) -> str:
        return self._wrap("3", text)

    def header(self, text: str) -> str:
        return self._wrap("1;4", text)

    def code(self, text: str) -> str:
        return self._wrap("36", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def button(self, text: str, kind: str | None = None) -> str:
        return self._wrap({"primary": "1;32", "danger": "1;31"}.get(kind or "", "1"), text)


PLAIN = Style()


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def display_width(text: str) -> int:
    """Terminal columns `text` takes (wide emoji count 2, combining marks 0)."""
    width = 0
    for ch in strip_ansi(text):
        if unicodedata.combining(ch) or ch == "\ufe0f" or ch == "\u200d":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def emojize(text: str) -> str:
    return _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link(inner: str, directory: Directory) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return "@" + directory.users.get(target[1:], label.lstrip("@") or target[1:])
    if target.startswith("#"):
        return "#" + directory.channels.get(target[1:], label or target[1:])
    if target.startswith("!subteam^"):
        group = target[len("!subteam^"):]
        return "@" + directory.groups.get(group, label.lstrip("@") or group)
    if target.startswith("!"):
        return label or "@" + target[1:].split("^", 1)[0]
    if not label or label == target:
        return target.removeprefix("mailto:")
    return f"{label} ({target})"


def mrkdwn(text: str, directory: Directory | None = None, style: Style = PLAIN) -> str:
    """Slack mrkdwn → terminal text: mentions and links resolved, `code` kept."""
    directory = directory or Directory()
    holes: list[str] = []

    def hole(rendered: str) -> str:
        holes.append(rendered)
        return f"\x00{len(holes) - 1}\x00"

    def code(match: re.Match[str]) -> str:
        if match.group(1) is not None:  # ``` block: its own indented lines
            body = unescape(match.group(1).strip("\n"))
            lines = "\n".join(_BLOCK_LINE + "    " + style.code(line)
                              for line in body.splitlines())
            return hole("\n" + lines + "\n")
        return hole(style.code(f"`{unescape(match.group(2))}`"))

    out = _CODE.sub(code, text)
    out = _ANGLE.sub(lambda m: hole(_link(m.group(1), directory)), out)
    out = emojize(out)
    out = _BOLD.sub(lambda m: style.bold(m.group(1)), out)
    out = _ITALIC.sub(lambda m: style.italic(m.group(1)), out)
    out = _STRIKE.sub(lambda m: m.group(1), out)
    out = unescape(out)
    out = _HOLE.sub(lambda m: holes[int(m.group(1))], out)  # holes hold no holes
    return _tidy(out.split("\n"))


def _tidy(lines: list[str]) -> str:
    """Drop the blank lines a code block's own line breaks left around it, and blank
    lines at either end; the author's other blank lines stay."""
    def is_code(i: int) -> bool:
        return 0 <= i < len(lines) and lines[i].startswith(_BLOCK_LINE)

    kept = [line for i, line in enumerate(lines)
            if line.strip() or not (is_code(i - 1) or is_code(i + 1))]
    text = "\n".join(line.removeprefix(_BLOCK_LINE) for line in kept)
    return text.strip("\n")


def text_of(obj: Any, directory: Directory | None = None, style: Style = PLAIN) -> str:
    """A text object (plain_text or mrkdwn) or a bare string, rendered."""
    if isinstance(obj, str):
        return mrkdwn(obj, directory, style)
    if not isinstance(obj, dict):
        return ""
    raw = str(obj.get("text", ""))
    if obj.get("type") == "plain_text":
        return emojize(raw)
    return mrkdwn(raw, directory, style)


@dataclasses.dataclass(frozen=True)
class Button:
    """A clickable button as the message carries it."""

    label: str
    action_id: str
    value: str | None = None
    style: str | None = None
    confirm: Confirm | None = None


@dataclasses.dataclass(frozen=True)
class Confirm:
    """A button's confirmation dialog (Block Kit ConfirmObject), as text."""

    title: str
    text: str
    confirm: str = "Confirm"
    deny: str = "Cancel"

    def question(self) -> str:
        return f"{self.title}: {self.text} [y/N] "


@dataclasses.dataclass
class Rendered:
    lines: list[str]
    buttons: list[Button]

    @property
    def text(self) -> str:
        return strip_ansi("\n".join(self.lines))


def _confirm(obj: Any, directory: Directory) -> Confirm | None:
    if not isinstance(obj, dict):
        return None
    return Confirm(
        title=text_of(obj.get("title"), directory) or "Are you sure?",
        text=text_of(obj.get("text"), directory),
        confirm=text_of(obj.get("confirm"), directory) or "Confirm",
        deny=text_of(obj.get("deny"), directory) or "Cancel",
    )


def _button(el: dict[str, Any], directory: Directory) -> Button:
    return Button(
        label=text_of(el.get("text"), directory) or str(el.get("action_id", "button")),
        action_id=str(el.get("action_id", "")),
        value=None if el.get("value") is None else str(el["value"]),
        style=el.get("style"), confirm=_confirm(el.get("confirm"), directory),
    )


def button_label(number: int, button: Button, style: Style = PLAIN) -> str:
    label = f"[{number}] {button.label}"
    return style.button(label, button.style)


def _element(el: Any, buttons: list[Button], directory: Directory, style: Style) -> str:
    """One interactive element: buttons get the next number, others are described."""
    if not isinstance(el, dict):
        return ""
    kind = el.get("type")
    if kind == "button":
        buttons.append(_button(el, directory))
        return button_label(len(buttons), buttons[-1], style)
    if kind == "image":
        return f"[image: {el.get('alt_text', '')}]"
    placeholder = text_of(el.get("placeholder"), directory)
    return f"({kind}{': ' + placeholder if placeholder else ''}; not clickable here)"


def _columns(left: str, right: str, width: int) -> list[str]:
    out = []
    for a, b in zip_longest(left.split("\n"), right.split("\n"), fillvalue=""):
        pad = " " * max(width - display_width(a), 0)
        out.append((a + pad + "    " + b).rstrip() if b else a)
    return out


def _fields(fields: Sequence[Any], directory: Directory, style: Style) -> list[str]:
    texts = [text_of(f, directory, style) for f in fields]
    pairs = [(texts[i], texts[i + 1] if i + 1 < len(texts) else "")
             for i in range(0, len(texts), 2)]
    width = max((display_width(line) for left, _ in pairs for line in left.split("\n")),
                default=0)
    if width > FIELD_COLUMN_MAX:
        return [line for text in texts for line in text.split("\n")]
    return [line for left, right in pairs for line in _columns(left, right, width)]


def _rich_text(obj: Any) -> str:
    if isinstance(obj, dict):
        if obj.get("type") == "user":
            return f"@{obj.get('user_id', '')}"
        if "text" in obj and isinstance(obj["text"], str):
            return obj["text"]
        return "".join(_rich_text(e) for e in obj.get("elements") or [])
    if isinstance(obj, list):
        return "".join(_rich_text(e) for e in obj)
    return ""


def _block(block: Any, buttons: list[Button], directory: Directory, style: Style) -> list[str]:
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    if kind == "header":
        title = text_of(block.get("text"), directory)
        return [style.header(title), style.dim("─" * min(display_width(title), 72))]
    if kind == "section":
        lines: list[str] = []
        if block.get("text"):
            lines += text_of(block["text"], directory, style).split("\n")
        if block.get("fields"):
            lines += _fields(block["fields"], directory, style)
        if block.get("accessory"):
            accessory = _element(block["accessory"], buttons, directory, style)
            if accessory:
                lines.append("  → " + accessory)
        return lines
    if kind == "context":
        parts = [_element(e, buttons, directory, style) if e.get("type") == "image"
                 else text_of(e, directory, style)
                 for e in block.get("elements") or [] if isinstance(e, dict)]
        text = "  ".join(p for p in parts if p)
        return [style.dim("› " + line) for line in text.split("\n")]
    if kind == "divider":
        return [style.dim(DIVIDER)]
    if kind == "actions":
        elements = [_element(e, buttons, directory, style)
                    for e in block.get("elements") or []]
        return ["  ".join(e for e in elements if e)]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    if kind == "rich_text":
        return _rich_text(block).split("\n")
    if kind == "markdown":
        return str(block.get("text", "")).split("\n")
    if kind == "input":
        return [f"(input: {text_of(block.get('label'), directory)}; not supported here)"]
    return [f"[{kind} block]"]


def render_blocks(blocks: Sequence[Any], directory: Directory | None = None,
                  style: Style = PLAIN) -> Rendered:
    """Blocks → lines; buttons are numbered from 1 in the order they appear."""
    directory = directory or Directory()
    buttons: list[Button] = []
    lines: list[str] = []
    for block in blocks:
        lines += _block(block, buttons, directory, style)
    return Rendered(lines, buttons)


def render_message(message: Mapping[str, Any], directory: Directory | None = None,
                   style: Style = PLAIN) -> Rendered:
    """A message (`text`, `blocks`, `attachments`): the blocks, else the text."""
    directory = directory or Directory()
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks:
        rendered = render_blocks(blocks, directory, style)
    else:
        text = mrkdwn(str(message.get("text") or ""), directory, style)
        rendered = Rendered(text.split("\n") if text else [], [])
    for attachment in message.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        inner = (render_blocks(attachment["blocks"], directory, style).lines
                 if attachment.get("blocks")
                 else mrkdwn(str(attachment.get("text") or attachment.get("fallback") or ""),
                             directory, style).split("\n"))
        rendered.lines += ["│ " + line for line in inner]
    return rendered
