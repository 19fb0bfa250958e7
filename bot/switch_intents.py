"""`/flag …` and `/killswitch …` text → an intent, or a clear error saying what is
valid. Never raises, no network: a flag's group is found by a job (flags live in the
application's stores); a kill switch's from the catalog's `switches`."""

from __future__ import annotations

import dataclasses
import re

from bot.catalog import Catalog
from bot.parsing import CommandError, shorten
from bot.switch_stores import closest

FLAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}(/[A-Za-z0-9][A-Za-z0-9_.:-]{0,99})?$")
FLAG_USAGE = ("`/flag list [filter]` · `/flag off <name>` · `/flag on <name>` · "
              "`/flag history <name>` (a name in two groups: `group/name`)")
SWITCH_USAGE = ("`/killswitch list` · `/killswitch <name> on` · `/killswitch <name> off` · "
                "`/killswitch <name> status`")


@dataclasses.dataclass(frozen=True)
class FlagListIntent:
    filter: str = ""


@dataclasses.dataclass(frozen=True)
class FlagHistoryIntent:
    name: str


@dataclasses.dataclass(frozen=True)
class FlagChangeIntent:
    """`/flag off <name>`: which group holds it, a job finds out."""

    name: str  # "name" or "group/name"
    on: bool
    dry_run: bool = False


@dataclasses.dataclass(frozen=True)
class SwitchListIntent:
    pass


@dataclasses.dataclass(frozen=True)
class SwitchStatusIntent:
    group: str
    name: str


@dataclasses.dataclass(frozen=True)
class SwitchChangeIntent:
    group: str
    name: str
    on: bool
    dry_run: bool = False


SwitchIntent = (FlagListIntent | FlagHistoryIntent | FlagChangeIntent | SwitchListIntent
                | SwitchStatusIntent | SwitchChangeIntent)


def _dry_run(words: list[str]) -> tuple[list[str], bool]:
    kept = [w for w in words if w.lower() != "--dry-run"]
    return kept, len(kept) != len(words)


def parse_flag(text: str, catalog: Catalog) -> SwitchIntent | CommandError:
    words, dry_run = _dry_run(text.split())
    if not catalog.flags:
        return CommandError("No feature flags are configured.",
                            "An operator adds `[flags.<group>]` to the catalog.")
    if not words or words[0].lower() not in ("list", "on", "off", "history"):
        return CommandError(f"Unknown `/flag` command `{shorten(' '.join(words))}`."
                            if words else "`/flag` needs a command.", FLAG_USAGE)
    verb, rest = words[0].lower(), words[1:]
    if verb == "list":
        if len(rest) > 1 or dry_run:
            return CommandError("`/flag list` takes at most one filter word.", FLAG_USAGE)
        return FlagListIntent(rest[0] if rest else "")
    if len(rest) != 1 or not FLAG_NAME.match(rest[0]):
        return CommandError(f"`/flag {verb}` takes one flag name"
                            + (f" (got `{shorten(' '.join(rest))}`)." if rest else "."),
                            FLAG_USAGE)
    if verb == "history":
        return (CommandError("`--dry-run` goes with `on` or `off`.", FLAG_USAGE) if dry_run
                else FlagHistoryIntent(rest[0]))
    return FlagChangeIntent(rest[0], verb == "on", dry_run)


def parse_killswitch(text: str, catalog: Catalog) -> SwitchIntent | CommandError:
    words, dry_run = _dry_run(text.split())
    known = {name: group for group, g in catalog.killswitches.items() for name in g.switches}
    if not catalog.killswitches:
        return CommandError("No kill switches are configured.",
                            "An operator adds `[killswitches.<group>]` to the catalog.")
    if [w.lower() for w in words] == ["list"] and not dry_run:
        return SwitchListIntent()
    if len(words) != 2 or words[1].lower() not in ("on", "off", "status"):
        return CommandError(f"Unknown `/killswitch` command `{shorten(' '.join(words))}`."
                            if words else "`/killswitch` needs a command.", SWITCH_USAGE)
    name, verb = words[0], words[1].lower()
    group = known.get(name)
    if group is None:
        return CommandError(f"Unknown kill switch `{shorten(name)}`.",
                            f"{closest(name, known)} {SWITCH_USAGE}")
    if verb == "status":
        return (CommandError("`--dry-run` goes with `on` or `off`.", SWITCH_USAGE) if dry_run
                else SwitchStatusIntent(group, name))
    return SwitchChangeIntent(group, name, verb == "on", dry_run)
