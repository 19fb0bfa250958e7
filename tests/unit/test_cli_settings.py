"""A bad environment value stops start-up with the variable named, never a credential."""

from __future__ import annotations

import pytest

from bot.cli import StartupError, _problem, _settings


def test_a_bad_value_is_named_with_what_was_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLBOT_WORKERS", "many")
    with pytest.raises(StartupError) as raised:
        _settings()
    assert "ROLLBOT_WORKERS='many'" in str(raised.value)
    assert "valid integer" in str(raised.value)


def test_credentials_are_never_echoed() -> None:
    for name in ("DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        text = _problem({"loc": (name,), "input": "postgres://u:hunter2@db", "msg": "bad"})
        assert name in text and "hunter2" not in text
