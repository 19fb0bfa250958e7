"""The runbook's rollback blockers ("stop and escalate") that a plan checks against
the catalog before anyone may confirm, and its warnings.

Pure: a kind's plan gives the revision (or image) it would serve; each blocker is a
failed checklist item (Confirm and Gradual are then not offered), each warning a line
on the card. Catalog: `[services.<name>.blockers]` (bot/catalog.py, BlockersSection).
"""

from __future__ import annotations

import datetime as dt
import re

from bot.catalog import BlockersSection
from bot.plans import CheckItem, RevisionFacts

VULNERABLE = "Old version has a known security vulnerability"
_NUMBER = re.compile(r"(?:^|-)(\d{5})-[a-z0-9]{3}$")


def _number(revision: str) -> int | None:
    """00014-def (or medicalcor-api-00014-def) -> 14: Cloud Run numbers revisions."""
    found = _NUMBER.search(revision)
    return int(found.group(1)) if found else None


def _named(revision: str, entries: list[str]) -> str | None:
    """The catalog entry naming `revision`, by full name or by suffix."""
    return next((e for e in entries if revision == e or revision.endswith("-" + e)), None)


def image_vulnerable(image: str, section: BlockersSection) -> str | None:
    """The `vulnerable_images` entry matching `image`: the same reference, the same
    digest (an entry "sha256:…" matches it in any repository)."""
    digest = image.rsplit("@", 1)[1] if "@" in image else None
    for entry in section.vulnerable_images:
        if entry == image or (digest is not None and entry.rsplit("@", 1)[-1] == digest):
            return entry
    return None


def check_revision(target: RevisionFacts, section: BlockersSection, *,
                   now: dt.datetime | None = None) -> tuple[list[CheckItem], list[str]]:
    """(blockers as failed checklist items, warnings) for serving `target` again."""
    blockers: list[CheckItem] = []
    warnings: list[str] = []
    listed = _named(target.name, section.blocked_revisions)
    if listed is not None:
        blockers.append(CheckItem(f"{VULNERABLE} (blocked revision)", "fail",
                                  f"{target.name} is in the catalog's blocked_revisions"))
    image = image_vulnerable(target.image, section)
    if image is not None:
        blockers.append(CheckItem(f"{VULNERABLE} (vulnerable image)", "fail",
                                  f"{target.image} is in the catalog's vulnerable_images"))
    breaking = section.breaking_since
    if breaking is not None:
        since, number = _number(breaking.revision), _number(target.name)
        if since is not None and number is not None and number < since:
            blockers.append(CheckItem("External systems depend on a newer contract", "fail",
                                      f"{target.name} is older than {breaking.revision}: "
                                      f"{breaking.reason}"))
    days = section.warn_older_than_days
    if days is not None and target.created is not None:
        age = (now or dt.datetime.now(dt.UTC)) - target.created
        if age > dt.timedelta(days=days):
            warnings.append(f"{target.name} is {age.days} days old (older than "
                            f"warn_older_than_days = {days}): much has changed since.")
    return blockers, warnings


def check_image(image: str, section: BlockersSection) -> list[CheckItem]:
    """An image change: the new image against `vulnerable_images`."""
    entry = image_vulnerable(image, section)
    if entry is None:
        return []
    return [CheckItem(f"{VULNERABLE} (vulnerable image)", "fail",
                      f"{image} is in the catalog's vulnerable_images")]


ROTATED = "Secrets were rotated: re-enable the old version first"


def secret_blockers(secret: str, version: str, state: str) -> list[CheckItem]:
    """A secret change: the version it pins must still exist (a destroyed one cannot
    be enabled again)."""
    if state != "destroyed":
        return []
    return [CheckItem(f"{secret} version {version} is destroyed", "fail",
                      "a destroyed version cannot be enabled again: pin another version")]


def _rotated(secret: str, version: str, state: str, via_latest: bool) -> CheckItem:
    alias = " (its `latest`)" if via_latest else ""
    if state == "destroyed":
        return CheckItem("Secrets were rotated: the old version is destroyed", "fail",
                         f"the target reads {secret} version {version}{alias}, destroyed: "
                         "it can never be read again; roll forward instead")
    return CheckItem(ROTATED, "fail",
                     f"the target reads {secret} version {version}{alias}, now {state}")


def check_secrets(refs: dict[str, set[str]], states: dict[str, dict[str, str]],
                  newest: dict[str, str]) -> tuple[list[CheckItem], tuple[str, str] | None]:
    """(blockers, the (secret, version) to re-enable first) for a target reading `refs`
    (secret -> versions, "latest" included), given each secret's version `states` and
    `newest` version (what `latest` reads)."""
    blockers: list[CheckItem] = []
    remedy: tuple[str, str] | None = None
    for secret, versions in sorted(refs.items()):
        for ref in sorted(versions):
            version = newest.get(secret, ref) if ref == "latest" else ref
            state = states.get(secret, {}).get(version)
            if state in ("disabled", "destroyed"):
                blockers.append(_rotated(secret, version, state, ref == "latest"))
                if state == "disabled" and remedy is None:
                    remedy = (secret, version)
    return blockers, remedy


SCHEMA = "Database schema is incompatible with old code"
SCHEMA_DETAIL = ("migrations ran since it was built: old code may crash on new required "
                 "columns or data in a new format. Stop and escalate: coordinate with the DBA")


def _newer(serving: str, target: str) -> bool:
    if serving.isdigit() and target.isdigit():
        return int(serving) > int(target)
    return serving > target


def check_schema(target: str, target_schema: str | None, serving_schema: str | None,
                 source: str) -> tuple[list[CheckItem], list[str]]:
    """The schema the target knows (its label) against the one in use (`source`: the
    serving revision's label, or the migrations table)."""
    if serving_schema is None:
        return [], []
    if target_schema is None:
        return [], [f"{target}: schema unknown (no schema label), while {source} is at "
                    f"{serving_schema}: check for migrations by hand."]
    if _newer(serving_schema, target_schema):
        return [CheckItem(SCHEMA, "fail", f"{target} knows schema {target_schema}, "
                          f"{source} is at {serving_schema}: {SCHEMA_DETAIL}")], []
    return [], []


def check_migrated_since(target: str, created: dt.datetime | None,
                         migrated: dt.datetime) -> list[CheckItem]:
    """The migrations table's latest time against the target's creation."""
    if created is None or migrated <= created:
        return []
    return [CheckItem(SCHEMA, "fail", f"a migration ran at {migrated:%Y-%m-%d %H:%M} UTC, "
                      f"after {target} was built: {SCHEMA_DETAIL}")]
