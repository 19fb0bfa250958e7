"""The runbook's rollback blockers against the catalog: blocked revisions (by name or
suffix), vulnerable images (by tag or digest), breaking changes since a revision, and
the age warning."""

from __future__ import annotations

import datetime as dt

import pytest

from bot import blockers
from bot.blockers import VULNERABLE, check_image, check_revision
from bot.catalog import BlockersSection, CatalogError, parse_catalog
from bot.plans import RevisionFacts

NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
REPO = "europe-west3-docker.pkg.dev/medicalcor-prod/apps/medicalcor-api"
DIGEST = "sha256:" + "ab" * 32


def _rev(name: str = "medicalcor-api-00013-ghi", image: str = f"{REPO}:v1.2.1",
         days: int = 10) -> RevisionFacts:
    return RevisionFacts(name, image, NOW - dt.timedelta(days=days), "deployer", True)


def test_nothing_listed_nothing_blocked() -> None:
    assert check_revision(_rev(), BlockersSection(), now=NOW) == ([], [])


@pytest.mark.parametrize("entry", ["00013-ghi", "medicalcor-api-00013-ghi"])
def test_a_blocked_revision_by_suffix_or_full_name(entry: str) -> None:
    blocked, _ = check_revision(_rev(), BlockersSection(blocked_revisions=[entry]), now=NOW)
    assert [b.status for b in blocked] == ["fail"] and VULNERABLE in blocked[0].text
    other, _ = check_revision(_rev("medicalcor-api-00113-ghi"),
                              BlockersSection(blocked_revisions=["3-ghi"]), now=NOW)
    assert other == []  # a suffix is a whole revision suffix, not any tail


@pytest.mark.parametrize("image, entry, hit", [
    (f"{REPO}:v1.2.1", f"{REPO}:v1.2.1", True),
    (f"{REPO}:v1.2.1", f"{REPO}:v1.2.2", False),
    (f"{REPO}@{DIGEST}", DIGEST, True),  # a digest, in any repository
    (f"{REPO}@{DIGEST}", f"other/repo@{DIGEST}", True),
    (f"{REPO}:v1.2.1", DIGEST, False),
])
def test_vulnerable_images_by_tag_or_digest(image: str, entry: str, hit: bool) -> None:
    section = BlockersSection(vulnerable_images=[entry])
    blocked, _ = check_revision(_rev(image=image), section, now=NOW)
    assert bool(blocked) is hit
    assert bool(check_image(image, section)) is hit


def test_targets_before_a_breaking_change_are_blocked_with_its_reason() -> None:
    section = BlockersSection(breaking_since={"revision": "00014-def",
                                              "reason": "webhook URL changed"})
    blocked, _ = check_revision(_rev("medicalcor-api-00013-ghi"), section, now=NOW)
    assert "webhook URL changed" in blocked[0].detail
    assert check_revision(_rev("medicalcor-api-00014-def"), section, now=NOW)[0] == []


def test_an_old_target_is_a_warning_not_a_blocker() -> None:
    section = BlockersSection(warn_older_than_days=30)
    blocked, warnings = check_revision(_rev(days=400), section, now=NOW)
    assert blocked == [] and "400 days old" in warnings[0]
    assert check_revision(_rev(days=5), section, now=NOW) == ([], [])


@pytest.mark.parametrize("table, problem", [
    ('escalate_to = ["alice"]', "expected Slack user ids"),
    ('breaking_since = { revision = "v2", reason = "x" }', "expected a revision"),
    ("warn_older_than_days = 0", "greater than or equal to 1"),
    ('schema_query = "SELECT 1"', "schema_query and schema_database_url_env go together"),
    ('schema_database_url_env = "app-db"', "should match pattern"),
    ('schema_table = "x"', "Extra inputs are not permitted"),
])
def test_catalog_refuses_bad_blockers(table: str, problem: str) -> None:
    text = ('[gcp]\nproject = "p"\nregion = "europe-west3"\n[services.api]\n'
            f'cloud_run_service = "medicalcor-api"\n[services.api.blockers]\n{table}\n')
    with pytest.raises(CatalogError, match=problem):
        parse_catalog(text, "rollbot.toml")


# --- rotated secrets -------------------------------------------------------------------

STATES = {"API_KEY": {"1": "disabled", "2": "enabled", "3": "destroyed"}}


def test_a_target_reading_a_disabled_version_is_blocked_with_its_remedy() -> None:
    items, remedy = blockers.check_secrets({"API_KEY": {"1"}}, STATES, {"API_KEY": "3"})
    assert [i.text for i in items] == [blockers.ROTATED]
    assert "API_KEY version 1, now disabled" in items[0].detail
    assert remedy == ("API_KEY", "1")


def test_a_destroyed_version_blocks_without_a_remedy() -> None:
    items, remedy = blockers.check_secrets({"API_KEY": {"3"}}, STATES, {"API_KEY": "3"})
    assert "destroyed" in items[0].text and remedy is None


def test_latest_is_resolved_to_the_newest_version() -> None:
    items, _ = blockers.check_secrets({"API_KEY": {"latest"}}, STATES, {"API_KEY": "3"})
    assert "version 3 (its `latest`)" in items[0].detail
    clean, remedy = blockers.check_secrets({"API_KEY": {"latest", "2"}},
                                           {"API_KEY": {"2": "enabled"}}, {"API_KEY": "2"})
    assert clean == [] and remedy is None


def test_an_unread_secret_blocks_nothing() -> None:  # its read failed: a warning says so
    assert blockers.check_secrets({"OTHER": {"1"}}, STATES, {}) == ([], None)


# --- schema ----------------------------------------------------------------------------

def test_a_newer_serving_schema_blocks_as_integers() -> None:
    items, warned = blockers.check_schema("api-00013-ghi", "9", "12", "the serving revision")
    assert [i.text for i in items] == [blockers.SCHEMA] and "DBA" in items[0].detail
    assert warned == []
    assert blockers.check_schema("r", "12", "9", "s") == ([], [])  # "9" < "12" as numbers


def test_schemas_that_are_not_integers_compare_as_strings() -> None:
    assert blockers.check_schema("r", "2024_05", "2024_06", "s")[0]
    assert blockers.check_schema("r", "2024_06", "2024_06", "s") == ([], [])


def test_a_target_without_the_label_is_a_warning() -> None:
    items, warned = blockers.check_schema("api-00013-ghi", None, "12", "the serving revision")
    assert items == [] and "schema unknown" in warned[0]


def test_a_migration_after_the_target_was_built_blocks() -> None:
    built = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert blockers.check_migrated_since("r", built, built + dt.timedelta(days=1))
    assert blockers.check_migrated_since("r", built, built - dt.timedelta(days=1)) == []
