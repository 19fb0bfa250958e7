from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.catalog import load_catalog
from bot.changes.kind import ChangeRequest
from bot.intents import (
    ChangeIntent,
    CommandError,
    DiffIntent,
    EnvIntent,
    HelpIntent,
    HistoryIntent,
    ListRevisionsIntent,
    SecretIntent,
    VerifyIntent,
    parse_command,
)

CATALOG = load_catalog(Path(__file__).parents[2] / "rollbot.toml")


def _rollback(service: str, revision: str, dry_run: bool = False) -> ChangeIntent:
    return ChangeIntent(ChangeRequest("traffic", service, {"traffic": {revision: 100}},
                                      dry_run=dry_run))


def test_restore_latest_routing() -> None:
    assert parse_command("api --to-latest", CATALOG) == ChangeIntent(
        ChangeRequest("traffic", "api", {"to_latest": True}))


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP"])
def test_help(text: str) -> None:
    assert parse_command(text, CATALOG) == HelpIntent()


def test_list_revisions() -> None:
    assert parse_command("api", CATALOG) == ListRevisionsIntent("api")
    assert parse_command("  Web ", CATALOG) == ListRevisionsIntent("web")


@pytest.mark.parametrize(
    ("text", "revision"),
    [
        ("api 00014-def", "medicalcor-api-00014-def"),
        ("api medicalcor-api-00014-def", "medicalcor-api-00014-def"),
        ("api MEDICALCOR-API-00014-DEF", "medicalcor-api-00014-def"),
        ("web 00014-abc", "medicalcor-web-00014-abc"),
    ],
)
def test_rollback_by_full_name_or_suffix(text: str, revision: str) -> None:
    intent = parse_command(text, CATALOG)
    assert intent == _rollback(text.split()[0].lower(), revision)


def test_dry_run_anywhere_in_the_text() -> None:
    assert parse_command("--dry-run api 00014-def", CATALOG) == _rollback(
        "api", "medicalcor-api-00014-def", dry_run=True)
    assert parse_command("api 00014-def --dry-run", CATALOG) == _rollback(
        "api", "medicalcor-api-00014-def", dry_run=True)


def test_history() -> None:
    assert parse_command("history api", CATALOG) == HistoryIntent("api")


@pytest.mark.parametrize(
    ("text", "problem", "hint"),
    [
        ("payments", "Unknown service or command `payments`", "`api`, `web`"),
        ("api 00014-def extra", "Too many arguments", "00014-def"),
        ("api not_a_revision!", "not a valid revision name", "`/rollback api` lists"),
        ("api medicalcor-web-00014-abc", "is a revision of `medicalcor-web`",
         "/rollback web medicalcor-web-00014-abc"),
        ("api other-00001-abc", "not a revision of `medicalcor-api`", "00014-def"),
        ("api 00014-def --force", "Unknown option `--force`", "--dry-run"),
        ("api --to-latest 00014-def", "takes no revision", "/rollback api --to-latest"),
        ("api --image", "`--image` needs a value", "--image <tag or reference>"),
        ("api --image bad!tag", "not an image tag or reference", "@sha256:"),
        ("api --image v1 00014-def", "`--image` takes no revision", "--image v1.2.2"),
        ("api --image v1 --to-latest", "`--to-latest` does not go with", "--to-latest"),
        ("api 00014-def --unset", "`--unset` does not go with", "env <service> <KEY> --unset"),
        ("env", "`env` needs a service", "Known services"),
        ("env nope", "Unknown service `nope`", "`api`"),
        ("env api 9KEY=1", "not an environment variable name", "letters, digits"),
        ("env api KEY=1 --unset", "Say what `KEY` becomes", "LOG_LEVEL=info"),
        ("env api KEY --from nope!", "not a valid revision name", "00014-def"),
        ("env api KEY --from", "`--from` needs a value", "--from <revision>"),
        ("env api A=1 B=2", "`env` takes one KEY=value or KEY", "A value is one word"),
        ("diff api", "`diff` takes a service and a revision", "/rollback diff api 00014-def"),
        ("diff api medicalcor-web-00014-abc", "is a revision of `medicalcor-web`", "web"),
        ("history", "exactly one service", "Known services"),
        ("history nope", "Unknown service `nope`", "`api`"),
        ("api --dry-run", "needs a revision", "--dry-run"),
        ("help me", "takes no arguments", "Usage"),
        ("x" * 600, "too long", "Usage"),
    ],
)
def test_errors_say_what_was_wrong_and_what_is_valid(text: str, problem: str, hint: str) -> None:
    result = parse_command(text, CATALOG)
    assert isinstance(result, CommandError)
    assert problem in result.problem
    assert hint in result.hint


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_never_raises_always_intent_or_clear_error(text: str) -> None:
    result = parse_command(text, CATALOG)
    if isinstance(result, CommandError):
        assert result.problem and result.hint
    else:
        assert isinstance(result, HelpIntent | ListRevisionsIntent | HistoryIntent | ChangeIntent
                          | VerifyIntent | EnvIntent | DiffIntent | SecretIntent)
        if isinstance(result, ChangeIntent):
            request = result.request
            prefix = CATALOG.services[request.service].cloud_run_service + "-"
            assert request.kind != "traffic" or request.args.get("to_latest") or all(
                rev.startswith(prefix) for rev in request.args["traffic"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(
    ["api", "web", "help", "history", "--dry-run", "00014-def", "medicalcor-api-00013-ghi",
     "-", "--", "🙂", "api-00014", "00014-DEF", "env", "diff", "--image", "v1.2.2",
     "LOG_LEVEL=x", "--from", "--unset", "--to-latest"]), max_size=6))
def test_fuzz_command_shaped_words(words: list[str]) -> None:
    result = parse_command(" ".join(words), CATALOG)
    assert isinstance(result, CommandError | HelpIntent | ListRevisionsIntent | HistoryIntent
                      | ChangeIntent | EnvIntent | DiffIntent)


def test_every_kinds_usage_is_in_help_and_in_the_parsers_usage_text() -> None:
    from bot.changes import registry
    from bot.messages.help import help_message

    help_text = str(help_message(CATALOG).blocks_json())
    error = parse_command("help me", CATALOG)
    assert isinstance(error, CommandError)
    for line in registry.usage():
        assert line.syntax in help_text and line.does in help_text
        assert line.syntax in error.hint
    for option in registry.options():
        assert option in help_text


@pytest.mark.parametrize("text, expected", [
    ("secret API_SECRET_KEY", SecretIntent("API_SECRET_KEY")),
    ("secret API_SECRET_KEY 5", SecretIntent("API_SECRET_KEY", "5")),
    ("secret API_SECRET_KEY 5 --dry-run", SecretIntent("API_SECRET_KEY", "5", dry_run=True)),
])
def test_secret_words(text: str, expected: SecretIntent) -> None:
    assert parse_command(text, CATALOG) == expected


@pytest.mark.parametrize("text, problem", [
    ("secret", "takes a secret's name"),
    ("secret API_SECRET_KEY latest", "not a version number"),
    ("secret API_SECRET_KEY --dry-run", "needs a version"),
    ("secret API_SECRET_KEY 5 --image v1", "does not go with `secret`"),
    ("secret a/b 5", "not a secret name"),
])
def test_secret_bad_words(text: str, problem: str) -> None:
    result = parse_command(text, CATALOG)
    assert isinstance(result, CommandError) and problem in result.problem
