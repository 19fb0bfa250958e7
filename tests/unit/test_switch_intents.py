"""`/flag` and `/killswitch` words: every intent, and bad input with what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.catalog import load_catalog
from bot.parsing import CommandError
from bot.switch_intents import (
    FlagChangeIntent,
    FlagHistoryIntent,
    FlagListIntent,
    SwitchChangeIntent,
    SwitchListIntent,
    SwitchStatusIntent,
    parse_flag,
    parse_killswitch,
)

CATALOG = load_catalog(Path(__file__).parents[2] / "rollbot.toml")


@pytest.mark.parametrize("text, expected", [
    ("list", FlagListIntent()),
    ("list scoring", FlagListIntent("scoring")),
    ("off new-scoring-model", FlagChangeIntent("new-scoring-model", False)),
    ("ON app/new-scoring-model --dry-run", FlagChangeIntent("app/new-scoring-model", True,
                                                              True)),
    ("history new-scoring-model", FlagHistoryIntent("new-scoring-model")),
])
def test_flag_words(text: str, expected: object) -> None:
    assert parse_flag(text, CATALOG) == expected


@pytest.mark.parametrize("text, expected", [
    ("list", SwitchListIntent()),
    ("ai_scoring on", SwitchChangeIntent("app", "ai_scoring", True)),
    ("payments off --dry-run", SwitchChangeIntent("app", "payments", False, True)),
    ("payments status", SwitchStatusIntent("app", "payments")),
])
def test_killswitch_words(text: str, expected: object) -> None:
    assert parse_killswitch(text, CATALOG) == expected


@pytest.mark.parametrize("parse, text, problem", [
    (parse_flag, "", "needs a command"),
    (parse_flag, "flip x", "Unknown `/flag` command"),
    (parse_flag, "off", "takes one flag name"),
    (parse_flag, "off a b", "takes one flag name"),
    (parse_flag, "off 'drop table'", "takes one flag name"),
    (parse_flag, "history x --dry-run", "`--dry-run` goes with"),
    (parse_killswitch, "ai_scorng on", "Unknown kill switch"),
    (parse_killswitch, "ai_scoring maybe", "Unknown `/killswitch` command"),
    (parse_killswitch, "", "needs a command"),
])
def test_bad_words_say_what_is_valid(parse: object, text: str, problem: str) -> None:
    result = parse(text, CATALOG)  # type: ignore[operator]
    assert isinstance(result, CommandError) and problem in result.problem and result.hint


def test_an_unknown_switch_lists_the_closest() -> None:
    result = parse_killswitch("ai_scorng on", CATALOG)
    assert isinstance(result, CommandError) and "`ai_scoring`" in result.hint


@given(st.text(max_size=80))
def test_never_raises(text: str) -> None:
    for parse in (parse_flag, parse_killswitch):
        result = parse(text, CATALOG)
        if isinstance(result, CommandError):
            assert result.problem and result.hint
