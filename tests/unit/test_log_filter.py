"""The emulator's Cloud Logging filter subset: what it accepts, what it refuses."""

from __future__ import annotations

import datetime as dt

import pytest

from integrations.emulators.google.log_filter import (
    FilterError,
    parse_filter,
    parse_timestamp,
)
from integrations.emulators.world import UTC, EmuLogEntry

T0 = dt.datetime(2024, 12, 7, 10, 0, tzinfo=UTC)
ENTRY = EmuLogEntry(T0, "ERROR", 'db "primary" timeout', "medicalcor-api",
                    "medicalcor-api-00015-abc")


def matches(text: str, entry: EmuLogEntry = ENTRY) -> bool:
    return parse_filter(text).matches(entry, project="medicalcor-prod", location="europe-west3")


def test_empty_filter_matches_everything() -> None:
    assert parse_filter("").comparisons == ()
    assert parse_filter("   ").comparisons == ()
    assert matches("")


def test_parses_terms_joined_by_and_or_whitespace() -> None:
    parsed = parse_filter('resource.type="cloud_run_revision" AND severity>=ERROR  '
                          'timestamp < "2024-12-07T11:00:00Z"')
    assert [(c.field, c.op) for c in parsed.comparisons] == [
        ("resource.type", "="), ("severity", ">="), ("timestamp", "<")]
    assert parsed.comparisons[1].value == 5  # rank of ERROR
    assert parsed.comparisons[2].value == dt.datetime(2024, 12, 7, 11, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ('resource.type="cloud_run_revision"', True),
    ("resource.type=cloud_run_revision", True),
    ('resource.type!="cloud_run_revision"', False),
    ('resource.labels.service_name="medicalcor-api"', True),
    ('resource.labels.service_name="medicalcor"', False),  # = is exact
    ('resource.labels.service_name:"medicalcor"', True),
    ('resource.labels.revision_name="medicalcor-api-00015-abc"', True),
    ('resource.labels.location="europe-west3" resource.labels.project_id="medicalcor-prod"', True),
    ('logName="projects/medicalcor-prod/logs/run.googleapis.com%2Fstderr"', True),
    ("severity>=ERROR", True),
    ("severity>=error", True),
    ("severity>ERROR", False),
    ("severity=ERROR", True),
    ("severity!=ERROR", False),
    ("severity<CRITICAL", True),
    ("severity<=WARNING", False),
    ('timestamp>="2024-12-07T10:00:00Z"', True),
    ('timestamp>"2024-12-07T10:00:00Z"', False),
    ('timestamp>="2024-12-07T10:00:00.000001Z"', False),
    ('timestamp<="2024-12-07T11:00:00+01:00"', True),  # same instant, another zone
    ('timestamp<"2024-12-07T11:00:00+01:00"', False),
    ('textPayload:"TIMEOUT"', True),  # : is case-insensitive
    ('textPayload:"db \\"primary\\""', True),  # escaped quotes
    ('textPayload="db \\"primary\\" timeout"', True),
    ('textPayload:"crash"', False),
    ('severity>=ERROR AND textPayload:"crash"', False),
])
def test_matching(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_timestamp_formats() -> None:
    want = dt.datetime(2024, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_timestamp("2024-12-07T10:00:00.123456789Z") == want
    assert parse_timestamp("2024-12-07T12:00:00.123456+02:00") == want
    with pytest.raises(FilterError, match="zone"):
        parse_timestamp("2024-12-07T10:00:00")


@pytest.mark.parametrize(("text", "named"), [
    ('severity>=ERROR OR severity=INFO', "OR"),
    ('NOT severity=INFO', "NOT"),
    ('(severity=INFO)', "(severity=INFO)"),
    ('-severity=INFO', "-severity=INFO"),
    ("timeout", "timeout"),  # free-text search
    ('severity>=ERROR and textPayload:"x"', "and"),  # AND is case-sensitive
    ('AND severity>=ERROR', "AND"),
    ('severity>=ERROR AND', "AND"),
    ('severity>=ERROR AND AND textPayload:"x"', "AND"),
    ('jsonPayload.message="x"', "jsonPayload.message"),
    ('httpRequest.status>=500', "httpRequest.status"),
    ('textPayload>="x"', ">="),
    ('resource.type<"x"', "<"),
    ("severity:ERROR", ":"),
    ("severity>=LOUD", "LOUD"),
    ("severity>=500", "500"),
    ('timestamp>="yesterday"', "yesterday"),
    ('timestamp>="2024-12-07"', "2024-12-07"),
    ('textPayload="unterminated', "textPayload"),
])
def test_rejects_unsupported(text: str, named: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert named in str(info.value)


def test_secret_looking_env_values_are_redacted_as_typed_and_as_job_arguments() -> None:
    from bot.logs import redact, register_secret_env_patterns

    register_secret_env_patterns(["*SECRET*", "*TOKEN*", "*KEY*", "*PASSWORD*"])
    text = redact('text="env api API_SECRET_KEY=hunter2hunter2 LOG_LEVEL=debug" '
                  "args={'key': 'WEBHOOK_TOKEN', 'value': 'whk_n3w'} "
                  "{'key': 'LOG_LEVEL', 'value': 'info'}")
    assert "hunter2" not in text and "API_SECRET_KEY=[redacted]" in text
    assert "whk_n3w" not in text and "'key': 'WEBHOOK_TOKEN', 'value': '[redacted]'" in text
    assert "LOG_LEVEL=debug" in text and "'value': 'info'" in text
