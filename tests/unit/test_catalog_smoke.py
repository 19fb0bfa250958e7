"""smoke_urls as plain strings or tables with expectations, and smoke_command."""

from __future__ import annotations

import pytest

from bot.catalog import CatalogError, ServiceSection, SmokeUrl, parse_catalog
from bot.verification import CheckSpec, checks_for

BASE = """
[gcp]
project = "p"
region = "europe-west3"

[services.api]
cloud_run_service = "medicalcor-api"
"""


def parse(extra: str) -> ServiceSection:
    return parse_catalog(BASE + extra, "rollbot.toml").services["api"]


def errors(extra: str) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog(BASE + extra, "rollbot.toml")
    return str(info.value)


def test_both_forms_parse_and_map_to_check_specs() -> None:
    service = parse("""
smoke_urls = [
  "https://api.example.com/api/v1/health",
  { url = "https://api.example.com/ready", expect_status = 200, expect_json = { status = "ok", "checks.database" = "ok" } },
]
""")  # noqa: E501
    assert service.smoke_urls == [
        SmokeUrl(url="https://api.example.com/api/v1/health"),
        SmokeUrl(url="https://api.example.com/ready", expect_status=200,
                 expect_json={"status": "ok", "checks.database": "ok"}),
    ]
    assert str(service.smoke_urls[0]) == "https://api.example.com/api/v1/health"
    assert checks_for(service) == [
        CheckSpec("smoke: /api/v1/health", "https://api.example.com/api/v1/health"),
        CheckSpec("smoke: /ready", "https://api.example.com/ready", expect_status=200,
                  expect_json={"status": "ok", "checks.database": "ok"}),
    ]


def test_unquoted_dotted_keys_and_scalar_types() -> None:
    service = parse('smoke_urls = [{ url = "http://127.0.0.1:8080/h", '
                    'expect_json = { checks.database = "ok", version = 3, ready = true } }]')
    assert service.smoke_urls[0].expect_json == {
        "checks.database": "ok", "version": 3, "ready": True}
    assert isinstance(service.smoke_urls[0].expect_json["ready"], bool)


def test_plain_strings_still_work_from_python() -> None:
    service = ServiceSection(cloud_run_service="x",
                             smoke_urls=["https://a.example/h"])  # type: ignore[list-item]
    assert checks_for(service) == [CheckSpec("smoke: /h", "https://a.example/h")]


@pytest.mark.parametrize(("extra", "expected"), [
    ('smoke_urls = ["ftp://x/h"]', "services.api.smoke_urls.0.url: Value error, 'ftp://x/h'"),
    ('smoke_urls = ["https://x/h", { url = "https://x/r", expect_status = 42 }]',
     "services.api.smoke_urls.1.expect_status:"),
    ('smoke_urls = [{ expect_status = 200 }]', "services.api.smoke_urls.0.url: Field required"),
    ('smoke_urls = [{ url = "https://x/h", expect = 200 }]',
     "services.api.smoke_urls.0.expect: Extra inputs are not permitted"),
    ("smoke_urls = [3]",
     "services.api.smoke_urls.0: Value error, expected a URL string or a table"),
    ('smoke_urls = [{ url = "https://x/h", expect_json = {} }]',
     "services.api.smoke_urls.0.expect_json: Value error, name at least one field"),
    ('smoke_urls = [{ url = "https://x/h", expect_json = { latency = 1.5 } }]',
     "services.api.smoke_urls.0.expect_json.latency: Value error, expected a string, integer"),
    ('smoke_urls = [{ url = "https://x/h", expect_json = { "a..b" = "ok" } }]',
     "services.api.smoke_urls.0.expect_json: Value error, 'a..b'"),
])
def test_errors_name_file_and_key(extra: str, expected: str) -> None:
    message = errors(extra)
    assert message.startswith("rollbot.toml: invalid services catalog")
    assert expected in message


def test_smoke_command() -> None:
    service = parse('smoke_command = { command = ["pnpm", "run", "test:smoke"], '
                    'timeout_seconds = 300, cwd = "../app" }')
    assert service.smoke_command is not None
    assert service.smoke_command.command == ["pnpm", "run", "test:smoke"]
    assert service.smoke_command.timeout_seconds == 300
    assert service.smoke_command.cwd == "../app"
    assert parse("").smoke_command is None


@pytest.mark.parametrize(("extra", "expected"), [
    ("smoke_command = { command = [] }", "services.api.smoke_command.command:"),
    ('smoke_command = { command = ["pnpm", ""] }', "services.api.smoke_command.command.1:"),
    ('smoke_command = "pnpm run test:smoke"', "services.api.smoke_command:"),
    ('smoke_command = { command = ["x"], timeout_seconds = 0 }',
     "services.api.smoke_command.timeout_seconds:"),
    ('smoke_command = { command = ["x"], shell = true }',
     "services.api.smoke_command.shell: Extra inputs are not permitted"),
])
def test_smoke_command_errors_name_the_key(extra: str, expected: str) -> None:
    assert expected in errors(extra)
