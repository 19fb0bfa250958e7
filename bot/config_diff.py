"""What changes going from the revision serving now to another revision's config:
image, env, secret versions, resources, scaling, identity, timeout, labels.

Env values go through the Masker: a secret's value never appears, only its
reference; the short summary names env vars without any value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence

from bot.masking import MASK, Masker
from integrations.cloud_run import EnvVar, RevisionConfig

UNSET = "(unset)"
CHANGE_LABEL = "rollbot-change"  # rollbot's own mark on the revisions it creates
# Set by Cloud Run or its clients, not by the service's owners.
_SYSTEM_KEY = re.compile(
    r"^(run\.googleapis\.com|serving\.knative\.dev|client\.knative\.dev"
    r"|cloud\.googleapis\.com)/")
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{7})[0-9a-f]*$")
_LONGEST_VALUE = 60


@dataclasses.dataclass(frozen=True)
class ConfigDifference:
    field: str  # "image", "env FEATURE_X", "secret API_KEY", "cpu", "label team", ...
    before: str
    after: str


def diff_configs(serving: RevisionConfig, other: RevisionConfig,
                 masker: Masker) -> list[ConfigDifference]:
    """What differs going from `serving` to `other`, in a stable order."""
    diffs: list[ConfigDifference] = []

    def scalar(field: str, before: str, after: str) -> None:
        if before != after:
            diffs.append(ConfigDifference(field, before or UNSET, after or UNSET))

    scalar("image", serving.image, other.image)
    diffs += _env(serving, other, masker)
    diffs += _secrets(serving, other)
    diffs += _volumes(serving, other)
    scalar("cpu", serving.cpu, other.cpu)
    scalar("memory", serving.memory, other.memory)
    scalar("scaling", _scaling(serving), _scaling(other))
    scalar("service account", serving.service_account, other.service_account)
    scalar("timeout", f"{serving.timeout_seconds:g}s", f"{other.timeout_seconds:g}s")
    diffs += _mapping("label", serving.labels, other.labels, masker,
                      lambda key: key == CHANGE_LABEL or bool(_SYSTEM_KEY.match(key)))
    diffs += _mapping("annotation", serving.annotations, other.annotations, masker,
                      lambda key: bool(_SYSTEM_KEY.match(key)))
    return diffs


def _ordered_keys(before: Sequence[str], after: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*before, *after]))


def _env(serving: RevisionConfig, other: RevisionConfig,
         masker: Masker) -> list[ConfigDifference]:
    out = []
    for key in _ordered_keys([v.name for v in serving.env], [v.name for v in other.env]):
        before, after = serving.env_value(key), other.env_value(key)
        if before == after or _same_secret(before, after):
            continue  # a secret's version change is told under "secret"
        out.append(ConfigDifference(
            f"env {key}",
            masker.show(before) if before else UNSET,
            masker.show(after) if after else UNSET))
    return out


def _same_secret(before: EnvVar | None, after: EnvVar | None) -> bool:
    return bool(before and after and before.secret and after.secret
                and before.secret.secret == after.secret.secret)


def _versions(secret: str, versions: set[str] | None) -> str:
    if not versions:
        return UNSET
    ordered = sorted(versions, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    return f"{secret}@{'/'.join(ordered)}"


def _secrets(serving: RevisionConfig, other: RevisionConfig) -> list[ConfigDifference]:
    before, after = serving.secret_refs(), other.secret_refs()
    return [
        ConfigDifference(f"secret {name}", _versions(name, before.get(name)),
                         _versions(name, after.get(name)))
        for name in _ordered_keys(list(before), list(after))
        if before.get(name) != after.get(name)
    ]


def _volumes(serving: RevisionConfig, other: RevisionConfig) -> list[ConfigDifference]:
    """Where each secret volume is mounted, and from which secret (versions: above)."""
    def where(config: RevisionConfig) -> dict[str, str]:
        return {v.volume: f"{v.secret} at {v.mount_path or '(not mounted)'}"
                for v in config.secret_volumes}

    before, after = where(serving), where(other)
    return [
        ConfigDifference(f"volume {name}", before.get(name, UNSET), after.get(name, UNSET))
        for name in _ordered_keys(list(before), list(after))
        if before.get(name) != after.get(name)
    ]


def _scaling(config: RevisionConfig) -> str:
    return f"min {config.min_instances} / max {config.max_instances}"


def _mapping(kind: str, before: Mapping[str, str], after: Mapping[str, str], masker: Masker,
             ignored: Callable[[str], bool]) -> list[ConfigDifference]:
    def show(key: str, value: str | None) -> str:
        if value is None:
            return UNSET
        if masker.is_secret(key):
            return MASK
        return value if len(value) <= _LONGEST_VALUE else value[:_LONGEST_VALUE - 1] + "…"

    return [
        ConfigDifference(f"{kind} {key}", show(key, before.get(key)), show(key, after.get(key)))
        for key in _ordered_keys(sorted(before), sorted(after))
        if not ignored(key) and before.get(key) != after.get(key)
    ]


def image_label(image: str) -> str:
    """An image as people name it: its tag, else a short digest, else its name."""
    if image in ("", UNSET):
        return UNSET
    digest = _DIGEST.search(image)
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if ":" in name:
        return name.split(":", 1)[1]
    return digest.group(1) if digest else name


def _summary_part(diff: ConfigDifference) -> str:
    if diff.field == "image":
        return f"image {image_label(diff.before)}→{image_label(diff.after)}"
    if diff.field.startswith("secret "):
        name = diff.field.removeprefix("secret ")
        before = diff.before.removeprefix(name) if diff.before != UNSET else " unset"
        after = diff.after.removeprefix(name) if diff.after != UNSET else "unset"
        return f"secret {name}{before}→{after}"
    if diff.field in ("cpu", "memory", "timeout"):
        return f"{diff.field} {diff.before}→{diff.after}"
    return diff.field  # env names only: a value, even masked, has no place here


def short_summary(diffs: Sequence[ConfigDifference], limit: int = 4) -> str:
    """One line, e.g. "image v1.3.0→v1.2.2, env FEATURE_X, secret API_KEY@7→@5"."""
    parts = [_summary_part(d) for d in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"+{len(diffs) - limit} more")
    return ", ".join(parts)
