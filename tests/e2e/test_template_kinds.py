"""Image and env changes end to end: a new revision named by rollbot with only the
intended field changed, traffic to it, masking everywhere, dry-run through Cloud
Run's validate_only, plan drift at Confirm, Plan again, Undo; and the read-only env
and diff views."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.cloud import run_v2

from bot.changes.model import Change, State
from bot.ids import FollowUpAction
from bot.logs import RedactSecrets
from integrations.emulators.slack import SlackCall
from integrations.emulators.world import EmuTrafficTarget
from tests.e2e.conftest import RunningBot
from tests.e2e.test_rollback_flow import (
    ALICE,
    API,
    CONFIRM,
    SERVING,
    TARGET,
    UPDATE_SERVICE,
    _click,
)

REPO = "europe-west3-docker.pkg.dev/medicalcor-prod/apps/medicalcor-api"
SECRET_VALUE = "whk_live_00015-abc_s3cr3t"  # WEBHOOK_TOKEN of the serving revision


def _text(call: SlackCall) -> str:
    return (str(call.args.get("text", ""))
            + json.dumps(call.args.get("blocks", []), ensure_ascii=False))


def _posted(text: str) -> Any:
    return lambda call: call.http_status == 200 and text in _text(call)


async def _card(bot: RunningBot, text: str, expect: str = "Rollback plan") -> SlackCall:
    """The plan card this command posts (not an earlier one)."""
    slack = bot.world.slack
    earlier = {c.response.get("ts") for c in slack.calls_to("chat.postMessage")}
    ack = await slack.send_command(bot.events_url, text, **ALICE)
    assert ack.status == 200
    return await slack.wait_for("chat.postMessage", lambda c: (
        c.response.get("ts") not in earlier and _posted(expect)(c)), timeout=10)


async def _ephemeral(bot: RunningBot, text: str, expect: str) -> SlackCall:
    slack = bot.world.slack
    before = len(slack.calls_to("response_url"))
    await slack.send_command(bot.events_url, text, **ALICE)
    return await slack.wait_for("response_url", lambda c: (
        len(slack.calls_to("response_url")) > before and expect in _text(c)), timeout=10)


def _healthy_image(bot: RunningBot) -> None:
    """The serving image works (the fixture breaks it): an env change keeps the image,
    so its new revision behaves as the serving one."""
    revision = bot.world.world.services[API].revisions[SERVING]
    revision.healthy, revision.error_rate, revision.p95_latency_ms = True, 0.001, 120.0


async def _newest(bot: RunningBot) -> Change:
    return (await bot.runtime.deps.changes.history("api", limit=1))[0]


async def _finished(bot: RunningBot, within: float = 15) -> Change:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (change := await _newest(bot)).state not in (State.SUCCEEDED, State.FAILED):
        assert loop.time() < deadline, f"change stuck in {change.state}"
        await asyncio.sleep(0.05)
    return change


def _template(call: Any) -> run_v2.RevisionTemplate:
    return call.request.service.template


def _without(template: run_v2.RevisionTemplate, **fields: Any) -> dict[str, Any]:
    """The template as a dict, with the fields a change may touch blanked."""
    data = json.loads(run_v2.RevisionTemplate.to_json(template))
    data.pop("revision", None)
    data.get("labels", {}).pop("rollbot-change", None)
    for container in data.get("containers", []):
        for name in fields.get("container", ()):
            container.pop(name, None)
    return data


async def test_image_rollback_changes_only_the_image_and_sends_traffic_to_the_new_revision(
        running_bot: RunningBot) -> None:
    slack, world, google = (running_bot.world.slack, running_bot.world.world,
                            running_bot.world.google)
    before = await running_bot.runtime.deps.cloud_run.read_service(API, world.region)
    card = await _card(running_bot, "api --image v1.2.2")
    text = _text(card)
    assert "Rollback plan: api → image v1.2.2" in text
    assert "image v1.3.0 → v1.2.2" in text and f"{REPO}:v1.2.2" in text
    assert "medicalcor-api-rb-" in text and CONFIRM in text

    await _click(running_bot, card, CONFIRM, "U0ALICE")  # the requester may not confirm
    await slack.wait_for("response_url", _posted("needs a second person"), timeout=10)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    announcement = await slack.wait_for(
        "chat.postMessage", _posted("Initiating rollback of api to image v1.2.2"), timeout=10)
    assert not announcement.args.get("thread_ts")
    change = await _finished(running_bot)
    name = f"medicalcor-api-rb-{change.id}"
    assert change.state == State.SUCCEEDED, change.error
    assert world.serving(API) == {name: 100}
    assert world.services[API].revisions[name].image == f"{REPO}:v1.2.2"
    assert change.after == {"traffic": {name: 100}, "revision": name,
                            "image": f"{REPO}:v1.2.2"}
    line = await slack.wait_for("chat.postMessage", _posted(f"{name} 100%, as asked"))
    assert line.args["thread_ts"] == announcement.response["ts"]

    [update] = google.calls_to(UPDATE_SERVICE)
    sent = _template(update)
    assert sent.containers[0].image == f"{REPO}:v1.2.2"
    assert sent.revision == name and sent.labels["rollbot-change"] == str(change.id)
    read = before.raw.template
    assert _without(sent, container=("image",)) == _without(read, container=("image",))
    assert [t.revision for t in update.request.service.traffic] == [name]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every log line at DEBUG, through the product's own redaction (RedactSecrets sits
    on every handler rollbot installs)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    levels = [(lg, lg.level) for lg in loggers if isinstance(lg, logging.Logger)]
    for logger, _ in levels:
        logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for logger, old in levels:
            logger.setLevel(old)


async def test_env_change_masks_secret_looking_values_everywhere(
        running_bot: RunningBot, database_url: str, log_output: io.StringIO) -> None:
    _healthy_image(running_bot)
    slack, world, google = (running_bot.world.slack, running_bot.world.world,
                            running_bot.world.google)
    new_value = "whk_live_rotated_n3wv4lue"
    card = await _card(running_bot, f"env api WEBHOOK_TOKEN={new_value}")
    assert "env WEBHOOK_TOKEN: •••• → ••••" in _text(card)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    change = await _finished(running_bot)
    assert change.state == State.SUCCEEDED, change.error
    name = f"medicalcor-api-rb-{change.id}"
    env = {e.name: e.value for e in world.services[API].revisions[name].env}
    assert env["WEBHOOK_TOKEN"] == new_value and env["LOG_LEVEL"] == "debug"
    [update] = google.calls_to(UPDATE_SERVICE)
    read_env = [e.name for e in world.services[API].revisions[SERVING].env]
    assert [e.name for e in _template(update).containers[0].env] == read_env  # order kept

    outputs = json.dumps([c.args for c in slack.calls])
    assert new_value not in outputs and SECRET_VALUE not in outputs
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT details::text FROM audit_events")
        audit = " ".join(row[0] for row in await cur.fetchall())
    assert new_value not in audit and SECRET_VALUE not in audit
    logged = log_output.getvalue()
    assert "WEBHOOK_TOKEN" in logged  # the job's arguments were logged…
    assert new_value not in logged and SECRET_VALUE not in logged  # …but not its value


async def test_env_from_another_revision_and_unset(running_bot: RunningBot) -> None:
    world = running_bot.world.world
    _healthy_image(running_bot)
    card = await _card(running_bot, "env api LOG_LEVEL --from 00014-def")
    assert "env LOG_LEVEL: debug → its value in medicalcor-api-00014-def" in _text(card)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    change = await _finished(running_bot)
    assert change.state == State.SUCCEEDED, change.error
    env = {e.name: e.value for e in world.services[API].revisions[
        f"medicalcor-api-rb-{change.id}"].env}
    assert env["LOG_LEVEL"] == "info"
    assert "value" not in change.spec  # read from the revision when applied, never stored

    card = await _card(running_bot, "env api FEATURE_X --unset")
    await _click(running_bot, card, CONFIRM, "U0BOB")
    unset = await _finished(running_bot)
    assert unset.id != change.id and unset.state == State.SUCCEEDED, unset.error
    names = [e.name for e in world.services[API].revisions[f"medicalcor-api-rb-{unset.id}"].env]
    assert "FEATURE_X" not in names and "LOG_LEVEL" in names


@pytest.mark.parametrize(("text", "problem", "hint"), [
    ("env api NOPE=1", "has no env var `NOPE`", "LOG_LEVEL"),
    ("env api API_SECRET_KEY=x", "comes from Secret Manager", "/rollback secret"),
    ("env api LOG_LEVEL --from 00099-zzz", "does not exist", "/rollback api"),
])
async def test_env_plan_errors_say_what_is_valid_and_change_nothing(
        running_bot: RunningBot, text: str, problem: str, hint: str) -> None:
    reply = await _ephemeral(running_bot, text, problem)
    assert hint in _text(reply)
    assert not await running_bot.runtime.deps.changes.history("api")
    assert not running_bot.world.google.calls_to(UPDATE_SERVICE)


async def test_dry_run_asks_cloud_run_to_validate_and_changes_nothing(
        running_bot: RunningBot) -> None:
    world, google = running_bot.world.world, running_bot.world.google
    revisions = set(world.services[API].revisions)
    preview = await _ephemeral(running_bot, "api --image v1.2.2 --dry-run", "DRY RUN")
    assert "Cloud Run accepted the update" in _text(preview)
    [update] = google.calls_to(UPDATE_SERVICE)
    assert update.request.validate_only
    assert set(world.services[API].revisions) == revisions
    assert world.serving(API) == {SERVING: 100}
    assert not await running_bot.runtime.deps.changes.history("api")

    preview = await _ephemeral(running_bot, f"api {TARGET} --dry-run", "DRY RUN")
    assert "Cloud Run accepted the traffic change" in _text(preview)
    assert world.serving(API) == {SERVING: 100}


async def test_drift_at_confirm_changes_nothing_and_offers_a_fresh_plan(
        running_bot: RunningBot) -> None:
    slack, world, google = (running_bot.world.slack, running_bot.world.world,
                            running_bot.world.google)
    card = await _card(running_bot, "api --image v1.2.2")
    # Someone else splits the traffic before the Confirm.
    world.services[API].traffic = [EmuTrafficTarget(revision=SERVING, percent=50),
                                   EmuTrafficTarget(revision=TARGET, percent=50)]
    await _click(running_bot, card, CONFIRM, "U0BOB")
    stopped = await slack.wait_for("chat.postMessage", _posted("Stopped before changing"),
                                   timeout=10)
    assert "what serves changed since the plan" in _text(stopped)
    change = await _finished(running_bot)
    assert change.state == State.FAILED and "plan out of date" in (change.error or "")
    assert not google.calls_to(UPDATE_SERVICE)
    assert world.serving(API) == {SERVING: 50, TARGET: 50}

    result = await slack.click(running_bot.events_url,
                               action_id=FollowUpAction.PLAN_AGAIN.value, user_id="U0ALICE",
                               channel_id="C0INCIDENT", message_ts=stopped.response["ts"])
    assert result.status == 200
    fresh = await slack.wait_for("chat.postMessage", lambda c: (
        c.response.get("ts") != card.response["ts"] and "Rollback plan: api → image v1.2.2"
        in _text(c) and f"{SERVING}` 50%" in _text(c)), timeout=10)
    assert CONFIRM in _text(fresh)


async def test_a_label_edit_before_confirm_is_not_drift(running_bot: RunningBot) -> None:
    world = running_bot.world.world
    _healthy_image(running_bot)
    card = await _card(running_bot, "env api LOG_LEVEL=info")
    service = world.services[API]
    service.generation += 1  # an etag-only change (someone edited a label)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    change = await _finished(running_bot)
    assert change.state == State.SUCCEEDED, change.error


async def test_undo_of_an_image_change_restores_the_split_by_name(
        running_bot: RunningBot) -> None:
    slack, world = running_bot.world.slack, running_bot.world.world
    card = await _card(running_bot, "api --image v1.2.2")
    await _click(running_bot, card, CONFIRM, "U0BOB")
    done = await _finished(running_bot)
    assert done.state == State.SUCCEEDED
    await slack.wait_for("chat.update", lambda c: c.args.get("ts") == done.card_ts
                         and FollowUpAction.UNDO.value in _text(c), timeout=10)
    await _click(running_bot, card, FollowUpAction.UNDO.value, "U0ALICE")
    undo = await slack.wait_for("chat.postMessage", _posted(f"This undoes change #{done.id}"),
                                timeout=10)
    assert f"Rollback plan: api → {SERVING}" in _text(undo)
    await _click(running_bot, undo, CONFIRM, "U0BOB")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while world.serving(API) != {SERVING: 100}:
        assert loop.time() < deadline, world.serving(API)
        await asyncio.sleep(0.05)


async def test_env_and_diff_views_are_masked(running_bot: RunningBot) -> None:
    keys = await _ephemeral(running_bot, "env api", "keys that differ")
    text = _text(keys)
    assert "LOG_LEVEL" in text and "FEATURE_X" in text and "WEBHOOK_TOKEN" in text
    assert "secret:API_SECRET_KEY@2" in text and "secret:API_SECRET_KEY@1" in text
    assert "whk_live" not in text and "`medicalcor-api-00015-abc`: ••••" in text

    one = await _ephemeral(running_bot, "env api LOG_LEVEL", "LOG_LEVEL of api")
    assert "medicalcor-api-00015-abc`: debug" in _text(one)
    await _ephemeral(running_bot, "env api NOPE", "No revision of `api` has an env var `NOPE`")

    diff = await _ephemeral(running_bot, "diff api 00013-ghi", "00015-abc (serving)")
    text = _text(diff)
    assert "v1.3.0" in text and "v1.2.1" in text and "FEATURE_X" in text
    assert "API_SECRET_KEY" in text and "whk_live" not in text
    card = await _card(running_bot, "api 00014-def")
    assert "also changes: image v1.3.0→v1.2.2" in _text(card)
