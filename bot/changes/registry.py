"""Every change kind, in one place: what `/rollback help`, the quick reference and
the parser's usage text list, and what the workflow looks a change's kind up in.
Adding a kind is a line here (see docs/architecture.md, "Adding a change kind")."""

from __future__ import annotations

from bot.changes.kind import ChangeKind, ChangeRequest, Usage
from bot.changes.kinds.env import EnvKind
from bot.changes.kinds.flag import FlagKind
from bot.changes.kinds.gradual import GradualKind
from bot.changes.kinds.image import ImageKind
from bot.changes.kinds.killswitch import KillSwitchKind
from bot.changes.kinds.secret import SecretKind
from bot.changes.kinds.traffic import TrafficKind
from bot.ids import KindName

# Parsing asks each kind in this order; traffic (`/rollback <service> <revision>`)
# takes what no other kind's option claimed, so it comes last.
# Gradual is never requested by itself (a traffic card offers it) and secret has its
# own words (`/rollback secret …`, bot/intents.py): they parse nothing.
KINDS: tuple[ChangeKind, ...] = (ImageKind(), EnvKind(), GradualKind(), SecretKind(),
                                  FlagKind(), KillSwitchKind(), TrafficKind())

_BY_NAME: dict[str, ChangeKind] = {kind.name: kind for kind in KINDS}


class UnknownKind(LookupError):
    pass


def kind_named(name: str) -> ChangeKind:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownKind(f"no change kind {name!r}") from None


def options() -> dict[str, bool]:
    """Every kind's `--option` -> whether it takes a value."""
    return {option: takes for kind in KINDS for option, takes in kind.options.items()}


def subcommands() -> dict[str, ChangeKind]:
    """`/rollback <word> <service> …` words that belong to a kind (e.g. `env`)."""
    return {word: kind for kind in KINDS if (word := getattr(kind, "subcommand", None))}


def usage() -> list[Usage]:
    return [line for kind in KINDS for line in kind.usage()]


def restore_latest_request(service: str) -> ChangeRequest:
    """Latest routing again (LATEST 100%), for a service a change left pinned."""
    return ChangeRequest(KindName.TRAFFIC.value, service, {"to_latest": True})
