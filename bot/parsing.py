"""Words shared by every parser of `/rollback …` text: the error that says what was
wrong and what is valid, and how a revision may be written."""

from __future__ import annotations

import dataclasses
import re

from bot.catalog import Catalog

# Cloud Run revision names: lowercase letters, digits and hyphens, at most 63
# characters, starting with a letter. The generated suffix is "NNNNN-xxx".
REVISION_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
REVISION_SUFFIX = re.compile(r"^\d{5}-[a-z0-9]{1,20}$")


@dataclasses.dataclass(frozen=True)
class CommandError:
    """What was wrong, and what would be valid instead."""

    problem: str
    hint: str

    @property
    def text(self) -> str:
        return f"{self.problem}\n{self.hint}"


def known_services(catalog: Catalog) -> str:
    return "Known services: " + ", ".join(f"`{s}`" for s in sorted(catalog.services)) + "."


def shorten(token: str, limit: int = 40) -> str:
    return token if len(token) <= limit else token[: limit - 1] + "…"


def resolve_revision(catalog: Catalog, service: str, token: str) -> str | CommandError:
    """A revision given in full (`medicalcor-api-00014-def`) or by suffix (`00014-def`)."""
    cloud_run_service = catalog.services[service].cloud_run_service
    example = f"`{cloud_run_service}-00014-def` or `00014-def`"
    if REVISION_SUFFIX.match(token):
        return f"{cloud_run_service}-{token}"
    if not REVISION_NAME.match(token):
        return CommandError(
            f"`{shorten(token)}` is not a valid revision name.",
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
        f"`{shorten(token)}` is not a revision of `{cloud_run_service}`.",
        f"Revisions of `{service}` look like {example}. `/rollback {service}` lists them.",
    )


