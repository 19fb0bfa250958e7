"""A service's configuration across revisions: env keys, one key, a diff. Values come
already masked by the caller's `Masker`; nothing here sees a secret's value."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.config_diff import ConfigDifference
from bot.masking import Masker
from bot.messages.base import Message, context, mrkdwn_section
from bot.messages.plan import HEADER_MAX, TEXT_MAX, clip, esc
from integrations.cloud_run import RevisionConfig


def _shown(config: RevisionConfig, key: str, masker: Masker) -> str:
    var = config.env_value(key)
    return "(unset)" if var is None else masker.show(var)


def _raw(config: RevisionConfig, key: str) -> tuple[str | None, ...] | None:
    """A var's value or reference, to compare with (never shown)."""
    var = config.env_value(key)
    if var is None:
        return None
    return (var.value, var.secret.secret if var.secret else None,
            var.secret.version if var.secret else None)


def env_keys_message(service: str, configs: Sequence[RevisionConfig],
                     masker: Masker) -> Message:
    """The keys whose value differs across the revisions, newest first (a masked value
    that differs is listed too, its values shown masked)."""
    keys = sorted({e.name for c in configs for e in c.env})
    differing = [k for k in keys if len({_raw(c, k) for c in configs}) > 1]
    head = f"Env of {service}: keys that differ across the last {len(configs)} revisions"
    blocks: list[Block] = [HeaderBlock(text=clip(head, HEADER_MAX))]
    if not differing:
        blocks.append(mrkdwn_section("No key differs: every revision has the same env."))
    for key in differing:
        lines = "\n".join(f"`{esc(c.revision)}`: {esc(_shown(c, key, masker))}"
                          for c in configs)
        blocks.append(mrkdwn_section(clip(f"*{esc(key)}*\n{lines}")))
    same = [k for k in keys if k not in differing]
    if same:
        blocks.append(context(clip("The same in every revision: " + ", ".join(same))))
    blocks.append(context(f"`/rollback env {service} KEY --from <revision>` sets one back."))
    text = f"{head}: " + (", ".join(differing) or "none")
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks[:50]))


def env_key_message(service: str, key: str, configs: Sequence[RevisionConfig],
                    masker: Masker) -> Message:
    head = f"{key} of {service} in the last {len(configs)} revisions"
    lines = "\n".join(f"`{esc(c.revision)}`: {esc(_shown(c, key, masker))}" for c in configs)
    blocks: list[Block] = [HeaderBlock(text=clip(head, HEADER_MAX)), mrkdwn_section(clip(lines)),
                           context(f"`/rollback env {service} {key} --from <revision>` "
                                   "sets it back to that revision's value.")]
    text = f"{head}: " + "; ".join(f"{c.revision} {_shown(c, key, masker)}" for c in configs)
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))


def diff_message(service: str, serving: str, other: str,
                 differences: Sequence[ConfigDifference]) -> Message:
    head = f"{service}: {serving} (serving) → {other}"
    blocks: list[Block] = [HeaderBlock(text=clip(head, HEADER_MAX))]
    if not differences:
        blocks.append(mrkdwn_section("No difference: same image and configuration."))
    else:
        lines = "\n".join(f"• *{esc(d.field)}*: {esc(d.before)} → {esc(d.after)}"
                          for d in differences)
        blocks.append(mrkdwn_section(clip(f"Going back to `{other}` also changes:\n{lines}")))
    text = f"{head}: " + (", ".join(d.field for d in differences) or "no difference")
    return Message(text=clip(text, TEXT_MAX), blocks=tuple(blocks))
