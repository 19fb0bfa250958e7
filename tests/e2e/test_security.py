"""Inbound requests are verified, replays do nothing twice, secrets stay secret.

Every request to /slack/events must carry Slack's v0 signature (HMAC-SHA256 of
`v0:{timestamp}:{raw body}` under the signing secret) and a timestamp within
five minutes; anything else is a 401 and has no effect at all: no Slack output,
no rollback row, no audit event, no hand-off, no job. (The basic 401s of a
listing command are in test_revision_list.py; here every variant, for both a
slash command that would start a rollback and a Confirm click that would run one.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import psycopg
import pytest

from bot.changes.model import State
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack import SlackCall
from integrations.emulators.slack.blocks import find_element
from integrations.emulators.slack.delivery import (
    block_actions_form,
    block_actions_payload,
    command_form,
    delivery_headers,
)
from integrations.emulators.slack.emulator import VERIFICATION_TOKEN, SlackEmulator
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import (
    ALICE,
    CONFIRM,
    UPDATE_SERVICE,
    _click,
    _posted,
    _propose,
    _rollback,
    _text,
    _text_starts,
    _wait_state,
)

INCIDENT_ID, INCIDENT_NAME = "C0INCIDENT", "inc-api-outage"
SIGNATURE, TIMESTAMP = "X-Slack-Signature", "X-Slack-Request-Timestamp"
SIX_MINUTES = 6 * 60


# ---- building requests by hand (so a test can sign one body and send another) ----

def _command_body(slack: SlackEmulator, text: str, user_id: str = "U0ALICE") -> bytes:
    return command_form(
        token=VERIFICATION_TOKEN, team_id=slack.team_id, team_domain=slack.team_domain,
        channel_id=INCIDENT_ID, channel_name=INCIDENT_NAME, user_id=user_id,
        user_name=slack.store.users[user_id].name, command="/rollback", text=text,
        api_app_id=slack.app_id,
        response_url=slack.new_response_url(channel_id=INCIDENT_ID, user_id=user_id))


def _click_payload(slack: SlackEmulator, card: SlackCall, user_id: str,
                   action_id: str = CONFIRM) -> dict[str, Any]:
    ts = card.response["ts"]
    message = slack.store.find(INCIDENT_ID, ts)
    assert message is not None
    found = find_element(message["blocks"], action_id)
    assert found is not None, f"no {action_id} button on the card"
    block_id, button = found
    return block_actions_payload(
        token=VERIFICATION_TOKEN, team_id=slack.team_id, team_domain=slack.team_domain,
        api_app_id=slack.app_id, user_id=user_id, user_name=slack.store.users[user_id].name,
        channel_id=INCIDENT_ID, channel_name=INCIDENT_NAME, action_id=action_id,
        block_id=block_id or "b", value=button["value"], button_text=button["text"]["text"],
        response_url=slack.new_response_url(channel_id=INCIDENT_ID, user_id=user_id,
                                            message_ts=ts),
        message_ts=ts, message=slack.store.public(message), is_ephemeral=False)


async def _post(url: str, body: bytes, signed: dict[str, str],
                drop: tuple[str, ...] = ()) -> int:
    headers = delivery_headers(signed, dict.fromkeys(drop))
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status


# A forgery: (slack, body that would be honest, a tampered variant) -> (sent body,
# headers, headers to drop).
Forgery = Callable[[SlackEmulator, bytes, bytes], tuple[bytes, dict[str, str], tuple[str, ...]]]


def _no_v0(slack: SlackEmulator, body: bytes, _: bytes
           ) -> tuple[bytes, dict[str, str], tuple[str, ...]]:
    signed = slack.sign(body)
    return body, signed | {SIGNATURE: signed[SIGNATURE].removeprefix("v0=")}, ()


FORGERIES: dict[str, Forgery] = {
    "wrong_secret": lambda s, b, _: (b, s.sign(b, secret="not-the-signing-secret"), ()),
    "tampered_body": lambda s, b, t: (t, s.sign(b), ()),
    "timestamp_6_min_old": lambda s, b, _: (b, s.sign(b, int(time.time()) - SIX_MINUTES), ()),
    "timestamp_6_min_ahead": lambda s, b, _: (b, s.sign(b, int(time.time()) + SIX_MINUTES), ()),
    "missing_signature": lambda s, b, _: (b, s.sign(b), (SIGNATURE,)),
    "missing_timestamp": lambda s, b, _: (b, s.sign(b), (TIMESTAMP,)),
    "signature_without_v0": _no_v0,
}


class HandOffSpy:
    """Records every hand-off and job deferral the running bot makes from now on."""

    def __init__(self, bot: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handoffs: list[str] = []
        self.jobs: list[str] = []
        deps = bot.runtime.deps
        submit, configure = deps.dispatcher.submit, deps.jobs.configure_task
        hand_off = deps.handoffs.hand_off

        def spy_submit(work: Any, name: str = "after-ack") -> Any:
            self.handoffs.append(name)
            return submit(work, name)

        def spy_hand_off(task_name: str, **kwargs: Any) -> None:
            self.handoffs.append(task_name)
            hand_off(task_name, **kwargs)

        def spy_configure(name: str, *args: Any, **kwargs: Any) -> Any:
            self.jobs.append(name)
            return configure(name, *args, **kwargs)

        monkeypatch.setattr(deps.dispatcher, "submit", spy_submit)
        monkeypatch.setattr(deps.handoffs, "hand_off", spy_hand_off)
        monkeypatch.setattr(deps.jobs, "configure_task", spy_configure)


async def _rows(bot: RunningBot, query: str) -> list[tuple[Any, ...]]:
    async with bot.runtime.deps.pool.connection() as conn:
        cursor = await conn.execute(query)
        return list(await cursor.fetchall())


async def _queued_jobs(bot: RunningBot) -> list[str]:
    rows = await _rows(bot, "SELECT task_name FROM procrastinate_jobs "
                            "WHERE task_name <> 'rollbot.maintenance'")
    return [str(r[0]) for r in rows]


def _outputs(slack: SlackEmulator) -> list[SlackCall]:
    return [c for c in slack.calls
            if c.method in ("response_url", "chat.postMessage", "chat.postEphemeral",
                            "chat.update")]


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_slash_command_is_401_and_does_nothing(
    running_bot: RunningBot, monkeypatch: pytest.MonkeyPatch, forgery: str
) -> None:
    slack = running_bot.world.slack
    spy = HandOffSpy(running_bot, monkeypatch)
    honest = _command_body(slack, "api 00014-def")
    tampered = honest.replace(b"text=api+00014-def", b"text=api+00013-ghi")
    assert tampered != honest
    body, headers, drop = FORGERIES[forgery](slack, honest, tampered)

    assert await _post(running_bot.events_url, body, headers, drop) == 401

    await asyncio.sleep(0.3)  # room for anything that would (wrongly) run after an ack
    assert _outputs(slack) == []
    assert spy.handoffs == [] and spy.jobs == []
    assert await _queued_jobs(running_bot) == []
    assert await _rows(running_bot, "SELECT id FROM changes") == []
    assert await _rows(running_bot, "SELECT id FROM audit_events") == []
    assert not running_bot.world.google.calls_to(UPDATE_SERVICE)
    # Control: the very same body, honestly signed, is accepted and acted on.
    assert await _post(running_bot.events_url, honest, slack.sign(honest)) == 200
    await slack.wait_for("chat.postMessage", _posted("Rollback plan"))


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_confirm_click_is_401_and_does_nothing(
    running_bot: RunningBot, monkeypatch: pytest.MonkeyPatch, forgery: str
) -> None:
    slack = running_bot.world.slack
    card = await _propose(running_bot)
    proposed = await _rollback(running_bot)
    audit_before = await _rows(running_bot, "SELECT id, action FROM audit_events")
    outputs_before = len(_outputs(slack))
    spy = HandOffSpy(running_bot, monkeypatch)
    # Honest: alice (the requester, who may not confirm) clicks Confirm. Tampered: the
    # same request with the user swapped to bob, an approver, as a forger would.
    payload = _click_payload(slack, card, "U0ALICE")
    honest = block_actions_form(payload)
    payload["user"] = payload["user"] | {"id": "U0BOB", "username": "bob", "name": "bob"}
    tampered = block_actions_form(payload)
    body, headers, drop = FORGERIES[forgery](slack, honest, tampered)

    assert await _post(running_bot.events_url, body, headers, drop) == 401

    await asyncio.sleep(0.3)
    assert _outputs(slack)[outputs_before:] == []
    assert spy.handoffs == [] and spy.jobs == []
    assert await _queued_jobs(running_bot) == []
    rollback = await _rollback(running_bot)
    assert (rollback.id, rollback.state, rollback.confirmed_by) == (
        proposed.id, State.PROPOSED, None)
    assert await _rows(running_bot, "SELECT id, action FROM audit_events") == audit_before
    assert not running_bot.world.google.calls_to(UPDATE_SERVICE)
    # Control: the honest click, honestly signed, reaches the bot (and is refused: alice
    # requested this rollback, so she may not confirm it).
    assert await _post(running_bot.events_url, honest, slack.sign(honest)) == 200
    await slack.wait_for("response_url", _posted("second person"))


async def test_replayed_confirm_click_does_nothing_twice(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    card = await _propose(running_bot)
    # Bob's genuine Confirm, captured byte for byte with its headers.
    body = block_actions_form(_click_payload(slack, card, "U0BOB"))
    headers = slack.sign(body)
    assert await _post(running_bot.events_url, body, headers) == 200
    # An attacker (or a proxy) replays it at once and again after the rollback ran:
    # well within five minutes, with a perfectly valid signature.
    first_replay = await _post(running_bot.events_url, body, headers)
    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
    await slack.wait_for("chat.postMessage", _posted("Rollback verified"), timeout=15)
    second_replay = await _post(running_bot.events_url, body, headers)
    assert {first_replay, second_replay} <= {200, 401}
    await asyncio.sleep(0.5)  # room for a (wrong) second execution to show

    assert rollback.state == State.SUCCEEDED and rollback.confirmed_by == "U0BOB"
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 1
    announcements = [c for c in slack.calls_to("chat.postMessage")
                     if _text_starts("Initiating rollback")(c)]
    assert len(announcements) == 1
    confirms = [e for e in await running_bot.runtime.deps.audit.for_change(rollback.id)
                if e.action == "confirm"]
    assert [(e.actor, e.outcome) for e in confirms] == [("U0BOB", "ok")]
    # The replays got, at most, an ephemeral "already" note; nothing in the channel.
    replies = slack.calls_to("response_url")
    assert all(c.args.get("response_type") == "ephemeral" and "already" in _text(c)
               for c in replies), [_text(c) for c in replies]


async def test_a_click_whose_block_id_names_another_service_changes_only_its_own(
    running_bot: RunningBot,
) -> None:
    """The buttons block's id names the service only so the job can read Cloud Run
    early; a forged one (signed: Slack sends what the message held) must not steer
    the change: the rollback's own row decides."""
    slack, world = running_bot.world.slack, running_bot.world.world
    web_before = world.serving("medicalcor-web")
    card = await _propose(running_bot)
    payload = _click_payload(slack, card, "U0BOB")
    [action] = payload["actions"]
    assert action["block_id"].endswith(":api")  # the honest card names its service
    action["block_id"] = action["block_id"].replace(":api", ":web")
    body = block_actions_form(payload)
    assert await _post(running_bot.events_url, body, slack.sign(body)) == 200

    rollback = await _wait_state(running_bot, State.SUCCEEDED, State.FAILED, within=15)
    assert rollback.state == State.SUCCEEDED and rollback.service == "api"
    assert world.serving("medicalcor-api") == rollback.spec["traffic"]
    assert world.serving("medicalcor-web") == web_before
    updated = running_bot.world.google.calls_to(UPDATE_SERVICE)
    assert [c.request.service.name.rsplit("/", 1)[-1] for c in updated] == ["medicalcor-api"]


# ---- secrets --------------------------------------------------------------------------

def _debug_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if isinstance(logging.root.manager.loggerDict[name], logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    texts = []
    for record in records:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: look at the raw parts
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + formatter.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        texts.append(text)
    return texts


async def test_secrets_reach_no_log_no_slack_message_and_no_table(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets = {"bot token": emulated.bot_token, "signing secret": emulated.signing_secret}
    _debug_everywhere(caplog)
    bot = await start_bot(emulated, database_url, fresh_redis_url)
    try:
        _debug_everywhere(caplog)  # loggers created while starting
        slack = emulated.slack
        card = await _propose(bot)
        await _click(bot, card, CONFIRM, "U0ALICE")
        await slack.wait_for("response_url", _posted("second person"))
        await _click(bot, card, CONFIRM, "U0BOB")
        await slack.wait_for("chat.postMessage", _posted("Rollback verified"), timeout=15)
        rollback = await _wait_state(bot, State.SUCCEEDED)
        assert rollback.verdict == "verified"
        await slack.send_command(bot.events_url, "history api", **ALICE)
        await slack.wait_for("response_url", _posted("medicalcor-api-00014-def"))
        tables = {table: [str(r[0]) for r in await _rows(
            bot, f"SELECT row_to_json(t)::text FROM {table} t")]
            for table in ("changes", "audit_events")}
    finally:
        await bot.stop()

    texts = _record_texts(caplog.records)
    assert len(texts) > 50, "expected DEBUG logging from the whole session"
    calls = [json.dumps(c.args, default=str) for c in emulated.slack.calls]
    # What the bot answered Slack itself (acks, 401s), headers included.
    calls += [d.body + json.dumps(d.headers) for d in emulated.slack.deliveries]
    assert any(c.method == "response_url" for c in emulated.slack.calls)
    assert tables["changes"] and tables["audit_events"]
    for what, value in secrets.items():
        assert len(value) >= 16
        leaked = [t[:300] for t in texts if value in t]
        assert not leaked, f"{what} in log records: {leaked[:3]}"
        assert not [c for c in calls if value in c], f"{what} in a Slack call's args"
        for table, rows in tables.items():
            assert not [r for r in rows if value in r], f"{what} in {table}"


async def test_signing_secret_is_checked_against_settings_not_a_default(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str
) -> None:
    """A bot started with another signing secret rejects the emulator's (correct-looking)
    requests: the secret really comes from SLACK_SIGNING_SECRET."""
    original = emulated.signing_secret
    emulated.signing_secret = "another-signing-secret-0123456789"
    try:
        bot = await start_bot(emulated, database_url, fresh_redis_url)
    finally:
        emulated.signing_secret = original
    try:
        result = await emulated.slack.send_command(bot.events_url, "api", **ALICE)
        assert result.status == 401
        ok = await emulated.slack.send_command(
            bot.events_url, "api", signing_secret="another-signing-secret-0123456789", **ALICE)
        assert ok.status == 200
    finally:
        await bot.stop()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT count(*) FROM changes")
        assert (await cursor.fetchone()) == (0,)
