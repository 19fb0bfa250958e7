"""`/rollback …` text → an intent, or a clear error saying what is valid.

Parsing never raises and never talks to the network: it only needs the catalog
(to know the services and their Cloud Run names).
"""

from __future__ import annotations

import dataclasses

from bot.catalog import Catalog
from bot.changes import registry
from bot.changes.kind import ChangeKind, ChangeRequest
from bot.changes.kinds.secret import SUBCOMMAND as SECRET
from bot.changes.kinds.secret import parse_secret
from bot.parsing import CommandError, known_services, resolve_revision, shorten

__all__ = ["ChangeIntent", "CommandError", "DiffIntent", "EnvIntent", "HelpIntent",
           "HistoryIntent", "Intent", "ListRevisionsIntent", "SecretIntent", "VerifyIntent",
           "parse_command", "usage"]

MAX_TEXT = 500

SUBCOMMANDS = ("help", "history", "verify", "diff", SECRET, *registry.subcommands())
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


@dataclasses.dataclass(frozen=True)
class EnvIntent:
    """`/rollback env <service> [KEY]`: show env values across revisions (masked)."""

    service: str
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class DiffIntent:
    """`/rollback diff <service> <revision>`: what going back to it would bring back."""

    service: str
    revision: str


@dataclasses.dataclass(frozen=True)
class SecretIntent:
    """`/rollback secret NAME` (its versions and readers) or `… NAME 5` (roll every
    service that reads it back to version 5: which services, Cloud Run says)."""

    secret: str
    version: str | None = None
    dry_run: bool = False


Intent = (HelpIntent | ListRevisionsIntent | HistoryIntent | ChangeIntent | VerifyIntent
          | EnvIntent | DiffIntent | SecretIntent)


def usage(catalog: Catalog) -> str:
    services = ", ".join(sorted(catalog.services))
    kinds = " · ".join(f"`{line.syntax}` {line.does}" for line in registry.usage())
    return (
        f"Usage: `/rollback <service>` lists revisions · {kinds} · "
        "`/rollback history <service>` · `/rollback verify <service>` · "
        "`/rollback diff <service> <revision>` · "
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

    if head == "diff":
        return _diff(catalog, rest, options, dry_run)
    if head == SECRET:
        return _secret(rest, options, dry_run)
    if head in registry.subcommands():
        return _subcommand(catalog, head, rest, options, dry_run)

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
        if getattr(kind, "subcommand", None):
            continue
        request = kind.parse(catalog, head, rest, options)
        if request is not None:
            return _claimed(kind, request, options, dry_run)
    return CommandError(f"Nothing to do with `{shorten(' '.join(args))}`.", usage(catalog))


def _claimed(kind: ChangeKind, request: ChangeRequest | CommandError,
             options: dict[str, str | None], dry_run: bool) -> Intent | CommandError:
    """The kind's request, unless an option of another kind came with it."""
    if isinstance(request, CommandError):
        return request
    stray = [option for option in options if option not in kind.options]
    if stray:
        return CommandError(f"`{stray[0]}` does not go with this command.",
                            usage_of(stray[0]))
    return ChangeIntent(dataclasses.replace(request, dry_run=dry_run))


def _service(catalog: Catalog, word: str | None, command: str) -> str | CommandError:
    if word is None:
        return CommandError(f"`{command}` needs a service.",
                            f"For example `/rollback {command} api`. {known_services(catalog)}")
    if word.lower() not in catalog.services:
        return CommandError(f"Unknown service `{shorten(word)}`.", known_services(catalog))
    return word.lower()


def _diff(catalog: Catalog, rest: list[str], options: dict[str, str | None],
          dry_run: bool) -> Intent | CommandError:
    example = "For example `/rollback diff api 00014-def`."
    if len(rest) != 2 or options or dry_run:
        return CommandError("`diff` takes a service and a revision.", example)
    service = _service(catalog, rest[0], "diff")
    if isinstance(service, CommandError):
        return service
    revision = resolve_revision(catalog, service, rest[1].lower())
    if isinstance(revision, CommandError):
        return revision
    return DiffIntent(service, revision)


def _subcommand(catalog: Catalog, head: str, rest: list[str],
                options: dict[str, str | None], dry_run: bool) -> Intent | CommandError:
    """`/rollback env <service> …`: a kind's own subcommand. Without a change to make
    (no `=`, no option) it only shows values."""
    service = _service(catalog, rest[0] if rest else None, head)
    if isinstance(service, CommandError):
        return service
    words = rest[1:]
    if not options and not dry_run and len(words) <= 1 and not any("=" in w for w in words):
        return EnvIntent(service, words[0] if words else None)
    kind = registry.subcommands()[head]
    request = kind.parse(catalog, service, words, options)
    if request is None:
        return CommandError(f"Nothing to do with `{shorten(' '.join(rest))}`.", usage(catalog))
    return _claimed(kind, request, options, dry_run)


def _secret(rest: list[str], options: dict[str, str | None],
            dry_run: bool) -> Intent | CommandError:
    if options:
        return CommandError(f"`{next(iter(options))}` does not go with `secret`.",
                            "For example `/rollback secret API_SECRET_KEY 5 --dry-run`.")
    parsed = parse_secret(rest)
    if isinstance(parsed, CommandError):
        return parsed
    secret, version = parsed
    if version is None and dry_run:
        return CommandError("`--dry-run` needs a version to preview.",
                            f"For example `/rollback secret {secret} 5 --dry-run`.")
    return SecretIntent(secret, version, dry_run)
