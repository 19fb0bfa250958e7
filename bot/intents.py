"""`/rollback …` text → an intent, or a clear error saying what is valid.

Parsing never raises and never talks to the network: it only needs the catalog
(to know the services and their Cloud Run names).
"""

from __future__ import annotations

import dataclasses
import re

from bot.catalog import Catalog

# Cloud Run revision names: lowercase letters, digits and hyphens, at most 63
# characters, starting with a letter. The generated suffix is "NNNNN-xxx".
REVISION_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
REVISION_SUFFIX = re.compile(r"^\d{5}-[a-z0-9]{1,20}$")
MAX_TEXT = 500

SUBCOMMANDS = ("help", "history", "verify")
FLAGS = ("--dry-run",)


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
class RollbackIntent:
    service: str
    revision: str  # full Cloud Run revision name
    dry_run: bool = False


@dataclasses.dataclass(frozen=True)
class VerifyIntent:
    service: str


Intent = HelpIntent | ListRevisionsIntent | HistoryIntent | RollbackIntent | VerifyIntent


@dataclasses.dataclass(frozen=True)
class CommandError:
    """What was wrong, and what would be valid instead."""

    problem: str
    hint: str

    @property
    def text(self) -> str:
        return f"{self.problem}\n{self.hint}"


def usage(catalog: Catalog) -> str:
    services = ", ".join(sorted(catalog.services))
    return (
        "Usage: `/rollback <service>` lists revisions · `/rollback <service> <revision>` "
        "proposes a rollback (add `--dry-run` to only preview) · `/rollback history <service>` · "
        "`/rollback verify <service>` · "
        f"`/rollback help`. Services: {services}."
    )


def _known_services(catalog: Catalog) -> str:
    return "Known services: " + ", ".join(f"`{s}`" for s in sorted(catalog.services)) + "."


def _shorten(token: str, limit: int = 40) -> str:
    return token if len(token) <= limit else token[: limit - 1] + "…"


def resolve_revision(catalog: Catalog, service: str, token: str) -> str | CommandError:
    """A revision given in full (`medicalcor-api-00014-def`) or by suffix (`00014-def`)."""
    cloud_run_service = catalog.services[service].cloud_run_service
    example = f"`{cloud_run_service}-00014-def` or `00014-def`"
    if REVISION_SUFFIX.match(token):
        return f"{cloud_run_service}-{token}"
    if not REVISION_NAME.match(token):
        return CommandError(
            f"`{_shorten(token)}` is not a valid revision name.",
            f"Give the full Cloud Run revision name or its suffix, e.g. {example}. "
            f"`/rollback {service}` lists the revisions.",
        )
    if token.startswith(cloud_run_service + "-"):
        return token
    for other_key, other in catalog.services.items():
        if other_key != service and token.startswith(other.cloud_run_service + "-"):
            return CommandError(
                f"`{token}` is a revision of `{other.cloud_run_service}` (service `{other_key}`), "
                f"not of `{cloud_run_service}`.",
                f"Did you mean `/rollback {other_key} {token}`?",
            )
    return CommandError(
        f"`{_shorten(token)}` is not a revision of `{cloud_run_service}`.",
        f"Revisions of `{service}` look like {example}. `/rollback {service}` lists them.",
    )


def parse_command(text: str, catalog: Catalog) -> Intent | CommandError:
    """Parse the text after `/rollback`. Never raises."""
    if len(text) > MAX_TEXT:
        return CommandError("That command is too long.", usage(catalog))
    words = text.split()
    flags = [w for w in words if w.startswith("--")]
    args = [w for w in words if not w.startswith("--")]
    unknown_flags = [f for f in flags if f not in FLAGS]
    if unknown_flags:
        return CommandError(
            f"Unknown option `{_shorten(unknown_flags[0])}`.",
            "The only option is `--dry-run` (preview a rollback without changing anything).",
        )
    dry_run = "--dry-run" in flags

    if not args:
        if dry_run:
            return CommandError("`--dry-run` needs a service and a revision.", usage(catalog))
        return HelpIntent()

    head, rest = args[0].lower(), args[1:]
    if head == "help":
        return HelpIntent() if not rest and not dry_run else CommandError(
            "`help` takes no arguments.", usage(catalog))
    if head in ("history", "verify"):
        if len(rest) != 1 or dry_run:
            return CommandError(f"`{head}` takes exactly one service.",
                                f"For example `/rollback {head} api`. {_known_services(catalog)}")
        service = rest[0].lower()
        if service not in catalog.services:
            return CommandError(f"Unknown service `{_shorten(rest[0])}`.", _known_services(catalog))
        return HistoryIntent(service) if head == "history" else VerifyIntent(service)

    if head not in catalog.services:
        return CommandError(
            f"Unknown service or command `{_shorten(args[0])}`.",
            f"{_known_services(catalog)} Commands: {', '.join(SUBCOMMANDS)}. {usage(catalog)}",
        )
    if not rest:
        if dry_run:
            return CommandError("`--dry-run` needs a revision to preview.",
                                f"For example `/rollback {head} 00014-def --dry-run`.")
        return ListRevisionsIntent(head)
    if len(rest) > 1:
        return CommandError(
            f"Too many arguments after `{head}`: `{_shorten(' '.join(rest))}`.",
            f"Give one revision, e.g. `/rollback {head} 00014-def`.",
        )
    revision = resolve_revision(catalog, head, rest[0].lower())
    if isinstance(revision, CommandError):
        return revision
    return RollbackIntent(head, revision, dry_run=dry_run)
