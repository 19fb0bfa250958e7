"""Which env values are secret, and how rollbot shows them: never.

A value read from Secret Manager is shown by reference ("secret:NAME@version"); a
plain value whose key looks secret (the catalog's `[masking] secret_env_patterns`)
is shown as a mask, with no part of it; anything else as it is, clipped.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from integrations.cloud_run import EnvVar

SECRET_ENV_PATTERNS_DEFAULT = ("*SECRET*", "*TOKEN*", "*KEY*", "*PASSWORD*")
MASK = "••••"
MAX_SHOWN = 60


class Masker:
    """Shows env values safely; `patterns` are globs on the key, case-insensitive."""

    def __init__(self, patterns: Sequence[str] = SECRET_ENV_PATTERNS_DEFAULT) -> None:
        self._patterns = tuple(p.upper() for p in patterns)

    def is_secret(self, key: str) -> bool:
        upper = key.upper()
        return any(fnmatch.fnmatchcase(upper, pattern) for pattern in self._patterns)

    def show(self, var: EnvVar) -> str:
        if var.secret is not None:
            return f"secret:{var.secret.secret}@{var.secret.version}"
        if self.is_secret(var.name):
            return MASK
        value = var.value or ""
        return value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN - 1] + "…"

    def mask_text(self, text: str, values: Iterable[str]) -> str:
        return mask_text(text, values)


def mask_text(text: str, values: Iterable[str]) -> str:
    """`text` with each of `values` replaced by the mask (e.g. a secret-looking env
    value quoted in an error message). Longest first, so a value containing another
    is masked whole; empty values are skipped."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
