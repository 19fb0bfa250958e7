"""`/rollback …` text → an intent, or a clear error saying what is valid.

Parsing never raises and never talks to the network: it only needs the catalog
(to know the services and their Cloud Run names).
"""

from __future__ import annotations

import dataclasses

from bot.catalog import Catalog
from bot.changes import registry
from bot.changes.kind import ChangeRequest
from bot.parsing import CommandError, known_services, shorten

__all__ = ["ChangeIntent", "CommandError", "HelpIntent", "HistoryIntent", "Intent",
           "ListRevisionsIntent", "VerifyIntent", "parse_command", "usage"]

MAX_TEXT = 500

SUBCOMMANDS = ("help", "history", "verify")
DRY_RUN = "--dry-run"


@dataclasses.dataclass(frozen=True)
class HelpIntent:
    pass


@dataclasses.dataclass(frozen=True)
class ListRevisionsIntent:
    service: str  # catalog key


@dataclasses.dataclass(frozen=True)
class HistoryIntent:
    service: str


@dataclasses.dataclass(frozen=True)
class ChangeIntent:
    """A change of some kind proposed (`/rollback api 00014-def`, `--to-latest`, …)."""

    request: ChangeRequest


@dataclasses.dataclass(frozen=True)
class VerifyIntent:
    service: str


Intent = HelpIntent | ListRevisionsIntent | HistoryIntent | ChangeIntent | VerifyIntent


def usage(catalog: Catalog) -> str:
    services = ", ".join(sorted(catalog.services))
    kinds = " · ".join(f"`{line.syntax}` {line.does}" for line in registry.usage())
    return (
        f"Usage: `/rollback <service>` lists revisions · {kinds} · "
        "`/rollback history <service>` · `/rollback verify <service>` · "
        f"`/rollback help`. Services: {services}."
    )


def _options(words: list[str]) -> tuple[dict[str, str | None], list[str]] | CommandError:
    """`--options` (with their values, for those that take one) and the other words."""
    known = {DRY_RUN: False, **registry.options()}
    options: dict[str, str | None] = {}
    args: list[str] = []
    rest = iter(words)
    for word in rest:
        if not word.startswith("--"):
            args.append(word)
            continue
        option = word.lower()
        if option not in known:
            valid = ", ".join(f"`{name}`" for name in known)
            return CommandError(f"Unknown option `{shorten(word)}`.", f"Valid options: {valid}.")
        options[option] = next(rest, None) if known[option] else None
        if known[option] and options[option] is None:
            return CommandError(f"`{option}` needs a value.", usage_of(option))
    return options, args


def usage_of(option: str) -> str:
    lines = [f"`{u.syntax}`" for u in registry.usage() if option in u.syntax]
    return "For example " + " or ".join(lines) + "." if lines else "See `/rollback help`."


def parse_command(text: str, catalog: Catalog) -> Intent | CommandError:
    """Parse the text after `/rollback`. Never raises."""
    if len(text) > MAX_TEXT:
        return CommandError("That command is too long.", usage(catalog))
    parsed = _options(text.split())
    if isinstance(parsed, CommandError):
        return parsed
    options, args = parsed
    dry_run = options.pop(DRY_RUN, "") is None
    if not args:
        if dry_run or options:
            return CommandError(f"`{next(iter(options), DRY_RUN)}` needs a service.",
                                usage(catalog))
        return HelpIntent()

    head, rest = args[0].lower(), args[1:]
    if head == "help":
        return HelpIntent() if not rest and not dry_run and not options else CommandError(
            "`help` takes no arguments.", usage(catalog))
    if head in ("history", "verify"):
        if len(rest) != 1 or dry_run or options:
            return CommandError(f"`{head}` takes exactly one service.",
                                f"For example `/rollback {head} api`. {known_services(catalog)}")
        service = rest[0].lower()
        if service not in catalog.services:
            return CommandError(f"Unknown service `{shorten(rest[0])}`.", known_services(catalog))
        return HistoryIntent(service) if head == "history" else VerifyIntent(service)

    if head not in catalog.services:
        return CommandError(
            f"Unknown service or command `{shorten(args[0])}`.",
            f"{known_services(catalog)} Commands: {', '.join(SUBCOMMANDS)}. {usage(catalog)}",
        )
    if not rest and not options:
        if dry_run:
            return CommandError("`--dry-run` needs a revision to preview.",
                                f"For example `/rollback {head} 00014-def --dry-run`.")
        return ListRevisionsIntent(head)
    for kind in registry.KINDS:
        request = kind.parse(catalog, head, rest, options)
        if isinstance(request, CommandError):
            return request
        if request is not None:
            return ChangeIntent(dataclasses.replace(request, dry_run=dry_run))
    return CommandError(f"Nothing to do with `{shorten(' '.join(args))}`.", usage(catalog))
