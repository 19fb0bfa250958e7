"""Masker: env values rollbot may show, and the ones it never shows."""

from __future__ import annotations

import pytest

from bot.masking import MASK, SECRET_ENV_PATTERNS_DEFAULT, Masker, mask_text
from integrations.cloud_run import EnvVar, SecretRef

SECRET_VALUE = "sk_live_51HxQ2eZvKYlo2C0aBcDeF"


@pytest.mark.parametrize(("key", "secret"), [
    ("API_SECRET_KEY", True), ("stripe_api_key", True), ("GITHUB_TOKEN", True),
    ("DB_PASSWORD", True), ("client_secret", True), ("LOG_LEVEL", False),
    ("FEATURE_X", False), ("MONKEY_MODE", True),  # "*KEY*" is a plain substring glob
])
def test_default_patterns_match_any_case(key: str, secret: bool) -> None:
    assert Masker(SECRET_ENV_PATTERNS_DEFAULT).is_secret(key) is secret


def test_custom_patterns_replace_the_default() -> None:
    masker = Masker(["database_url", "*DSN"])
    assert masker.is_secret("DATABASE_URL") and masker.is_secret("sentry_dsn")
    assert not masker.is_secret("API_SECRET_KEY")


def test_show_secret_ref_plain_and_masked() -> None:
    masker = Masker(SECRET_ENV_PATTERNS_DEFAULT)
    ref = EnvVar("API_SECRET_KEY", secret=SecretRef("API_SECRET_KEY", "5"))
    assert masker.show(ref) == "secret:API_SECRET_KEY@5"
    latest = EnvVar("DB", secret=SecretRef("DB_PASSWORD", "latest"))
    assert masker.show(latest) == "secret:DB_PASSWORD@latest"
    assert masker.show(EnvVar("LOG_LEVEL", "debug")) == "debug"
    assert masker.show(EnvVar("LOG_LEVEL")) == ""
    shown = masker.show(EnvVar("STRIPE_API_KEY", SECRET_VALUE))
    assert shown == MASK
    assert not any(SECRET_VALUE[i:i + 4] in shown for i in range(len(SECRET_VALUE) - 3))


def test_long_plain_values_are_clipped_to_60() -> None:
    shown = Masker().show(EnvVar("ALLOWED_ORIGINS", "https://a.example.com," * 10))
    assert len(shown) == 60 and shown.endswith("…")
    assert shown.startswith("https://a.example.com,")


def test_mask_text_replaces_every_value_longest_first() -> None:
    text = f"refused: token={SECRET_VALUE} (prefix sk_live_51) and again {SECRET_VALUE}"
    masked = mask_text(text, [SECRET_VALUE, "sk_live_51", ""])
    assert SECRET_VALUE not in masked and "sk_live_51" not in masked
    assert masked == f"refused: token={MASK} (prefix {MASK}) and again {MASK}"
    assert mask_text("nothing here", []) == "nothing here"
    assert Masker().mask_text(text, [SECRET_VALUE]) == mask_text(text, [SECRET_VALUE])
