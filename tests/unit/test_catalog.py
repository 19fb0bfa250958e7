from __future__ import annotations

from pathlib import Path

import pytest

from bot.catalog import CatalogError, load_catalog, parse_catalog

VALID = """
[gcp]
project = "p"
region = "europe-west3"
[services.api]
cloud_run_service = "medicalcor-api"
approvers = ["U0123ABCD", "S0GROUP1"]
"""


def test_example_catalog_loads_with_runbook_data() -> None:
    catalog = load_catalog(Path(__file__).parents[2] / "rollbot.toml")
    assert catalog.services["api"].cloud_run_service == "medicalcor-api"
    assert catalog.services["api"].require_second_person is True
    assert catalog.region_of("api") == "europe-west3"
    assert any("database migrations" in item for item in catalog.runbook.pre_rollback_checklist)
    assert catalog.runbook.quick_reference


def test_defaults() -> None:
    catalog = parse_catalog(VALID)
    assert catalog.slack.incident_channel_pattern == "^(inc|incident)[-_]"
    assert catalog.services["api"].verification.window_seconds == 120
    assert catalog.is_incident_channel("inc-api-down")
    assert catalog.is_incident_channel("incident_42")
    assert not catalog.is_incident_channel("general")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[gcp]\nproject='p'\n", "services"),
        (VALID.replace('"U0123ABCD"', '"alice"'), "services.api.approvers"),
        (VALID + "bogus = 1\n", "services.api.bogus"),
        (VALID.replace('"medicalcor-api"', '"Bad Name"'), "services.api.cloud_run_service"),
        (VALID + '[slack]\nincident_channel_pattern = "("\n', "incident_channel_pattern"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(text: str, expected: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "ops/rollbot.toml")
    assert "ops/rollbot.toml" in str(info.value)
    assert expected in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"not found.*ROLLBOT_CONFIG"):
        load_catalog(tmp_path / "nope.toml")


def test_masking_defaults_and_override() -> None:
    assert parse_catalog(VALID).masking.secret_env_patterns == [
        "*SECRET*", "*TOKEN*", "*KEY*", "*PASSWORD*"]
    custom = parse_catalog(VALID + '[masking]\nsecret_env_patterns = ["*DSN*"]\n')
    assert custom.masking.secret_env_patterns == ["*DSN*"]
    example = load_catalog(Path(__file__).parents[2] / "rollbot.toml")
    assert example.masking.secret_env_patterns == ["*SECRET*", "*TOKEN*", "*KEY*", "*PASSWORD*"]


@pytest.mark.parametrize(("masking", "key", "message"), [
    ("secret_env_patterns = []", "masking.secret_env_patterns", "at least 1"),
    ('secret_env_patterns = [""]', "masking.secret_env_patterns", "expected a glob"),
    ('secret_env_patterns = [" *KEY*"]', "masking.secret_env_patterns", "surrounding spaces"),
    ("secret_env_patterns = [3]", "masking.secret_env_patterns.0", "valid string"),
    ('secret_env_patterns = "*KEY*"', "masking.secret_env_patterns", "valid list"),
    ('patterns = ["*KEY*"]', "masking.patterns", "Extra inputs"),
])
def test_masking_errors_name_the_key(masking: str, key: str, message: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(f"{VALID}[masking]\n{masking}\n", "ops/rollbot.toml")
    assert f"  {key}: " in str(info.value)
    assert message in str(info.value)
