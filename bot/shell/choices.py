"""Which button a typed number clicks: the buttons of the latest message showing some."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bot.shell.render import Button


@dataclasses.dataclass(frozen=True)
class Choice:
    """What typing `number` clicks: a button on one stored message."""

    number: int
    button: Button
    channel_id: str
    message_ts: str | None
    is_ephemeral: bool = False
    visible_to: str | None = None  # the only user who can see (and click) it


class ChoiceRegistry:
    """The buttons of the most recent message that showed some; numbers start at 1."""

    def __init__(self) -> None:
        self._choices: list[Choice] = []

    @property
    def current(self) -> list[Choice]:
        return list(self._choices)

    def offer(self, buttons: Sequence[Button], *, channel_id: str, message_ts: str | None,
              is_ephemeral: bool = False, visible_to: str | None = None) -> list[Choice]:
        """A message with buttons was shown: its buttons are what numbers click now.
        A message without buttons changes nothing (its ts may be withdrawn instead)."""
        if buttons:
            self._choices = [
                Choice(i, button, channel_id, message_ts, is_ephemeral, visible_to)
                for i, button in enumerate(buttons, start=1)]
        return self.current

    def withdraw(self, *, channel_id: str, message_ts: str | None) -> bool:
        """The message lost its buttons (updated or deleted); forget them if current."""
        if self._choices and (self._choices[0].channel_id, self._choices[0].message_ts) == (
                channel_id, message_ts):
            self._choices = []
            return True
        return False

    def get(self, number: int) -> Choice | None:
        return next((c for c in self._choices if c.number == number), None)
