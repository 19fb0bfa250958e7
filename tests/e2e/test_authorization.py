"""Authorization is data: one table over every command and button, every kind of
actor, and the catalog settings that decide (requesters, approvers as users or a
user group, the two-person rule, the channel rule).

Each row runs end to end against a bot started with its own catalog: the reply
the actor sees (key phrases), the state afterwards, and the audit events the
actor's action wrote.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.catalog import CatalogError, load_catalog
from bot.changes.model import State
from bot.config import Settings
from bot.runtime import Runtime, serve_http
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack import DeliveryResult, SlackEmulator
from tests.e2e.conftest import FAST_RETRY, RunningBot
from tests.e2e.test_rollback_flow import (
    ALICE,
    CANCEL,
    CONFIRM,
    TARGET,
    UPDATE_SERVICE,
    _posted,
    _wait_state,
)

ALICE_ID, BOB, CAROL, DAVE, ERIN = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN"
ONCALL = "S0ONCALL"
REVISION_BUTTON = "revisions.roll_back_to"
CHANNELS = {"inc": ("C0INCIDENT", "inc-api-outage"), "general": ("C0GENERAL", "general")}
DEMO_APPROVERS = 'approvers = ["U0BOB", "U0CAROL"]'
CHANNEL_PATTERN = "^(inc|incident)[-_]"


# ---- catalogs: the emulated one, with one rule changed ---------------------------------

def _demo(text: str) -> str:
    assert text.count(DEMO_APPROVERS) == 2, "emulated catalog changed shape"
    return text


CATALOGS: dict[str, Callable[[str], str]] = {
    # approvers U0BOB, U0CAROL; anyone may request; two-person rule on.
    "demo": _demo,
    # approvers given only as a user group (members: alice, erin).
    "group": lambda t: _demo(t).replace(DEMO_APPROVERS, f'approvers = ["{ONCALL}"]'),
    # only alice may request.
    "requesters": lambda t: _demo(t).replace(
        DEMO_APPROVERS, DEMO_APPROVERS + '\nrequesters = ["U0ALICE"]'),
    # two-person rule off; alice is an approver too.
    "solo": lambda t: _demo(t).replace(DEMO_APPROVERS, 'approvers = ["U0ALICE", "U0BOB"]')
    .replace("require_second_person = true", "require_second_person = false"),
}


@dataclasses.dataclass
class BotFactory:
    emulated: EmulatedWorld
    database_url: str
    redis_url: str
    tmp_path: Path
    started: list[RunningBot] = dataclasses.field(default_factory=list)

    def write_catalog(self, setup: str, edit: Callable[[str], str] | None = None) -> Path:
        path = self.tmp_path / f"rollbot-{setup}.toml"
        edit = edit or CATALOGS[setup]
        path.write_text(edit(self.emulated.catalog_path.read_text(encoding="utf-8")),
                        encoding="utf-8")
        return path

    async def start(self, setup: str, edit: Callable[[str], str] | None = None) -> RunningBot:
        path = self.write_catalog(setup, edit)
        settings = Settings(**(self.emulated.env() | {  # type: ignore[arg-type]
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
            "ROLLBOT_CONFIG": str(path)}))
        catalog = load_catalog(settings.rollbot_config)
        runtime = await Runtime.start(settings, catalog, retry_policy=FAST_RETRY)
        runner, url = await serve_http(runtime, "127.0.0.1", 0)
        bot = RunningBot(self.emulated, runtime, url, catalog, runner)
        self.started.append(bot)
        return bot


@pytest_asyncio.fixture
async def bots(emulated: EmulatedWorld, database_url: str, fresh_redis_url: str,
               tmp_path: Path) -> AsyncIterator[BotFactory]:
    slack = emulated.slack
    slack.add_user(DAVE, "dave", "Dave Non-Approver")
    slack.add_user(ERIN, "erin", "Erin On-Call")
    slack.add_usergroup(ONCALL, "sre-oncall", [ALICE_ID, ERIN])
    factory = BotFactory(emulated, database_url, fresh_redis_url, tmp_path)
    yield factory
    for bot in reversed(factory.started):
        await bot.stop()


# ---- the table ------------------------------------------------------------------------

SKIP = "skip"  # audit not checked in the row (see test_channel_refusals_are_audited)


@dataclasses.dataclass(frozen=True)
class Row:
    action: str  # propose | dry_run | list | history | button | confirm | cancel
    actor: str
    setup: str  # a CATALOGS key
    outcome: str  # proposed | confirmed | cancelled | dry_run | revisions | history | refused
    phrases: tuple[str, ...] = ()  # in the actor's ephemeral reply
    # The actor's own audit events written by this action, as (action, outcome).
    audit: tuple[tuple[str, str], ...] | str = ()
    channel: str = "inc"
    requester: str = ALICE_ID  # who proposed the card a confirm/cancel acts on

    @property
    def id(self) -> str:
        return f"{self.action}-{self.actor[2:].lower()}-{self.setup}-{self.channel}"


SECOND_PERSON = ("needs a second person", "you can't confirm it")
NOT_APPROVER = ("not one of its approvers", "Who may confirm")
NOT_REQUESTER = ("You can't request rollbacks of `api`", "<@U0ALICE>")
CANT_CANCEL = ("You can't cancel this rollback", "Nothing was changed")
WRONG_CHANNEL = ("only in incident channels", CHANNEL_PATTERN)
PROPOSE_OK = (("propose", "ok"),)
PROPOSE_DENIED = (("propose", "denied"),)
CONFIRM_OK, CONFIRM_DENIED = (("confirm", "ok"),), (("confirm", "denied"),)
CANCEL_OK, CANCEL_DENIED = (("cancel", "ok"),), (("cancel", "denied"),)

ROWS = [
    # /rollback api 00014-def
    Row("propose", ALICE_ID, "demo", "proposed", audit=PROPOSE_OK),
    Row("propose", DAVE, "demo", "proposed", audit=PROPOSE_OK),  # no requesters: anyone
    Row("propose", BOB, "demo", "proposed", audit=PROPOSE_OK),
    Row("propose", ALICE_ID, "requesters", "proposed", audit=PROPOSE_OK),
    Row("propose", DAVE, "requesters", "refused", NOT_REQUESTER, PROPOSE_DENIED),
    Row("propose", BOB, "requesters", "refused", NOT_REQUESTER, PROPOSE_DENIED),
    Row("propose", ALICE_ID, "demo", "refused", WRONG_CHANNEL, SKIP, channel="general"),
    Row("propose", ALICE_ID, "requesters", "refused", WRONG_CHANNEL, SKIP, channel="general"),
    # "Roll back to this" on a revision list: the same request as the command.
    Row("button", ALICE_ID, "demo", "proposed", audit=PROPOSE_OK),
    Row("button", DAVE, "demo", "proposed", audit=PROPOSE_OK),
    Row("button", DAVE, "requesters", "refused", NOT_REQUESTER, PROPOSE_DENIED),
    Row("button", ALICE_ID, "demo", "refused", WRONG_CHANNEL, SKIP, channel="general"),
    # /rollback api 00014-def --dry-run: gated like a request, changes nothing; being
    # ephemeral and inert it is not held to the incident-channel rule.
    Row("dry_run", ALICE_ID, "demo", "dry_run", ("DRY RUN",), (("dry_run", "ok"),)),
    Row("dry_run", DAVE, "demo", "dry_run", ("DRY RUN",), (("dry_run", "ok"),)),
    Row("dry_run", DAVE, "requesters", "refused", NOT_REQUESTER, PROPOSE_DENIED),
    Row("dry_run", ALICE_ID, "demo", "dry_run", ("DRY RUN",), (("dry_run", "ok"),),
        channel="general"),
    # Read-only commands: anyone, anywhere; no audit.
    Row("list", DAVE, "requesters", "revisions", (TARGET,)),
    Row("list", ALICE_ID, "demo", "revisions", (TARGET,), channel="general"),
    Row("history", DAVE, "requesters", "history", ("No rollbacks of api yet",)),
    Row("history", ALICE_ID, "demo", "history", ("No rollbacks of api yet",),
        channel="general"),
    # Confirm on alice's plan card.
    Row("confirm", ALICE_ID, "demo", "refused", SECOND_PERSON, CONFIRM_DENIED),
    Row("confirm", BOB, "demo", "confirmed", audit=CONFIRM_OK),
    Row("confirm", CAROL, "demo", "confirmed", audit=CONFIRM_OK),
    Row("confirm", DAVE, "demo", "refused", (*NOT_APPROVER, "<@U0BOB>", "<@U0CAROL>"),
        CONFIRM_DENIED),
    Row("confirm", ERIN, "group", "confirmed", audit=CONFIRM_OK),  # approver via the group
    Row("confirm", ALICE_ID, "group", "refused", SECOND_PERSON, CONFIRM_DENIED),
    Row("confirm", BOB, "group", "refused", (*NOT_APPROVER, f"<!subteam^{ONCALL}>"),
        CONFIRM_DENIED),
    Row("confirm", DAVE, "group", "refused", (*NOT_APPROVER, f"<!subteam^{ONCALL}>"),
        CONFIRM_DENIED),
    Row("confirm", DAVE, "requesters", "refused", NOT_APPROVER, CONFIRM_DENIED),
    Row("confirm", ALICE_ID, "solo", "confirmed", audit=CONFIRM_OK),  # no two-person rule
    Row("confirm", DAVE, "solo", "refused", NOT_APPROVER, CONFIRM_DENIED, requester=DAVE),
    # Cancel on alice's plan card: the requester or an approver.
    Row("cancel", ALICE_ID, "demo", "cancelled", audit=CANCEL_OK),
    Row("cancel", BOB, "demo", "cancelled", audit=CANCEL_OK),
    Row("cancel", ERIN, "group", "cancelled", audit=CANCEL_OK),
    Row("cancel", DAVE, "demo", "refused", (*CANT_CANCEL, "<@U0ALICE>", "<@U0BOB>"),
        CANCEL_DENIED),
    Row("cancel", DAVE, "group", "refused", (*CANT_CANCEL, f"<!subteam^{ONCALL}>"),
        CANCEL_DENIED),
    Row("cancel", BOB, "group", "refused", CANT_CANCEL, CANCEL_DENIED),
]


# ---- running a row -----------------------------------------------------------------------

def _reply_text(args: dict[str, Any]) -> str:
    return str(args.get("text", "")) + json.dumps(args.get("blocks", []))


def _same_url(a: str, b: str) -> bool:
    return a.rsplit("/response/", 1)[-1] == b.rsplit("/response/", 1)[-1]


async def _reply(slack: SlackEmulator, result: DeliveryResult) -> dict[str, Any]:
    """The actor's ephemeral answer: on the ack, or posted to the response_url."""
    ack = result.json() if result.body.strip() else None
    if isinstance(ack, dict) and (ack.get("text") or ack.get("blocks")):
        return ack
    call = await slack.wait_for(
        "response_url", lambda c: _same_url(c.args["response_url"], result.response_url),
        timeout=10)
    return call.args


async def _propose_card(bot: RunningBot, requester: str) -> str:
    slack = bot.world.slack
    await slack.send_command(bot.events_url, "api 00014-def", user_id=requester,
                             channel_id="C0INCIDENT")
    card = await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)
    return str(card.response["ts"])


async def _act(bot: RunningBot, row: Row, card_ts: str | None) -> DeliveryResult:
    slack, url = bot.world.slack, bot.events_url
    channel_id, channel_name = CHANNELS[row.channel]
    where = {"user_id": row.actor, "channel_id": channel_id, "channel_name": channel_name}
    texts = {"propose": "api 00014-def", "dry_run": "api 00014-def --dry-run",
             "list": "api", "history": "history api"}
    if row.action in texts:
        return await slack.send_command(url, texts[row.action], **where)
    if row.action == "button":
        value = json.dumps({"service": "api", "revision": TARGET})
        return await slack.click(url, action_id=REVISION_BUTTON, value=value, **where)
    action_id = {"confirm": CONFIRM, "cancel": CANCEL}[row.action]
    return await slack.click(url, action_id=action_id, message_ts=card_ts, **where)


async def _audit_since(bot: RunningBot, after_id: int) -> list[tuple[str, str, str]]:
    async with bot.runtime.deps.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT actor, action, outcome FROM audit_events WHERE id > %s ORDER BY id",
            (after_id,))
        return [(str(a), str(b), str(c)) for a, b, c in await cursor.fetchall()]


async def _max_audit_id(bot: RunningBot) -> int:
    async with bot.runtime.deps.pool.connection() as conn:
        cursor = await conn.execute("SELECT coalesce(max(id), 0) FROM audit_events")
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
async def test_authorization_table(bots: BotFactory, row: Row) -> None:
    bot = await bots.start(row.setup)
    slack, google = bot.world.slack, bot.world.google
    card_ts = await _propose_card(bot, row.requester) if row.action in ("confirm",
                                                                      "cancel") else None
    before = await bot.runtime.deps.changes.history("api")
    audit_mark = await _max_audit_id(bot)
    posts_before = len(slack.calls_to("chat.postMessage"))
    updates_before = len(slack.calls_to("chat.update"))

    result = await _act(bot, row, card_ts)
    assert result.status == 200

    if row.outcome in ("refused", "dry_run", "revisions", "history"):
        reply = await _reply(slack, result)
        assert reply.get("response_type") == "ephemeral"
        text = _reply_text(reply)
        for phrase in row.phrases:
            assert phrase in text, f"{phrase!r} not in the reply: {text[:600]}"

    if row.outcome == "proposed":
        await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)
        rollbacks = await bot.runtime.deps.changes.history("api")
        assert [(r.state, r.requested_by) for r in rollbacks] == [(State.PROPOSED, row.actor)]
    elif row.outcome == "confirmed":
        rollback = await _wait_state(bot, State.SUCCEEDED, State.FAILED, within=15)
        assert (rollback.state, rollback.confirmed_by) == (State.SUCCEEDED, row.actor)
        assert len(google.calls_to(UPDATE_SERVICE)) == 1
    elif row.outcome == "cancelled":
        rollback = await _wait_state(bot, State.CANCELLED)
        assert rollback.cancelled_by == row.actor
    else:
        # Nothing changed: no rollback started or moved, nothing said in the channel.
        after = await bot.runtime.deps.changes.history("api")
        assert [(r.id, r.state, r.confirmed_by, r.cancelled_by) for r in after] == [
            (r.id, r.state, r.confirmed_by, r.cancelled_by) for r in before]
        assert len(slack.calls_to("chat.postMessage")) == posts_before
        assert len(slack.calls_to("chat.update")) == updates_before
    if row.outcome != "confirmed":  # a dry run only asks Cloud Run to validate
        assert all(c.request.validate_only for c in google.calls_to(UPDATE_SERVICE))

    if row.audit != SKIP:
        events = await _audit_since(bot, audit_mark)
        assert [(a, o) for actor, a, o in events if actor == row.actor] == list(row.audit)


def test_the_table_covers_every_action_and_actor() -> None:
    assert {r.action for r in ROWS} == {
        "propose", "dry_run", "list", "history", "button", "confirm", "cancel"}
    for action in ("propose", "button", "dry_run", "list", "history"):
        assert any(r.action == action and r.channel == "general" for r in ROWS), action
    for action in ("confirm", "cancel"):
        actors = {r.actor for r in ROWS if r.action == action}
        assert {ALICE_ID, BOB, ERIN, DAVE} <= actors, action
    assert {r.setup for r in ROWS} == set(CATALOGS)


# ---- beyond the table ------------------------------------------------------------------

async def test_unreadable_user_group_grants_nothing(bots: BotFactory) -> None:
    bot = await bots.start("group")
    slack = bot.world.slack
    card_ts = await _propose_card(bot, ALICE_ID)
    slack.inject("usergroups.users.list", error="missing_scope", count=5)
    result = await slack.click(bot.events_url, action_id=CONFIRM, message_ts=card_ts,
                               user_id=ERIN, channel_id="C0INCIDENT")
    reply = await _reply(slack, result)
    assert "not one of its approvers" in _reply_text(reply)
    rollbacks = await bot.runtime.deps.changes.history("api")
    assert [r.state for r in rollbacks] == [State.PROPOSED]
    assert not bot.world.google.calls_to(UPDATE_SERVICE)


async def test_user_group_membership_is_read_at_decision_time(bots: BotFactory) -> None:
    """Leaving the on-call group takes effect at once: no stale cached grant."""
    bot = await bots.start("group")
    slack = bot.world.slack
    card_ts = await _propose_card(bot, ALICE_ID)
    slack.add_usergroup(ONCALL, "sre-oncall", [ALICE_ID])  # erin rotated off
    result = await slack.click(bot.events_url, action_id=CONFIRM, message_ts=card_ts,
                               user_id=ERIN, channel_id="C0INCIDENT")
    assert "not one of its approvers" in _reply_text(await _reply(slack, result))
    slack.add_usergroup(ONCALL, "sre-oncall", [ALICE_ID, ERIN])  # and back on
    await slack.click(bot.events_url, action_id=CONFIRM, message_ts=card_ts, user_id=ERIN,
                      channel_id="C0INCIDENT")
    rollback = await _wait_state(bot, State.SUCCEEDED, State.FAILED, within=15)
    assert rollback.confirmed_by == ERIN


async def _channel_refusal(bot: RunningBot, send: Callable[[], Awaitable[DeliveryResult]]
                           ) -> list[tuple[str, str, str]]:
    mark = await _max_audit_id(bot)
    result = await send()
    assert "only in incident channels" in _reply_text(await _reply(bot.world.slack, result))
    # The audit row is written just after the ack (the ack itself does no I/O).
    for _ in range(100):
        events = await _audit_since(bot, mark)
        if events:
            return events
        await asyncio.sleep(0.02)
    return []


async def test_channel_refusals_are_audited(bots: BotFactory) -> None:
    bot = await bots.start("demo")
    slack, general = bot.world.slack, {"user_id": ALICE_ID, "channel_id": "C0GENERAL"}
    by_command = await _channel_refusal(
        bot, lambda: slack.send_command(bot.events_url, "api 00014-def", **general))
    by_button = await _channel_refusal(bot, lambda: slack.click(
        bot.events_url, action_id=REVISION_BUTTON,
        value=json.dumps({"service": "api", "revision": TARGET}), **general))
    assert by_command == [(ALICE_ID, "propose", "denied")]
    assert by_button == [(ALICE_ID, "propose", "denied")]


async def test_refused_request_can_be_retried_by_someone_allowed(bots: BotFactory) -> None:
    """A denial holds no slot: after dave is refused, alice's request goes through."""
    bot = await bots.start("requesters")
    slack = bot.world.slack
    refused = await slack.send_command(bot.events_url, "api 00014-def", user_id=DAVE,
                                       channel_id="C0INCIDENT")
    assert "You can't request" in _reply_text(await _reply(slack, refused))
    await slack.send_command(bot.events_url, "api 00014-def", **ALICE)
    await slack.wait_for("chat.postMessage", _posted("Rollback plan"), timeout=10)
    rollbacks = await bot.runtime.deps.changes.history("api")
    assert [(r.state, r.requested_by) for r in rollbacks] == [(State.PROPOSED, ALICE_ID)]


async def test_a_service_without_approvers_lets_nobody_confirm(bots: BotFactory) -> None:
    """Fail closed: `approvers = []` must not mean "anyone but the requester may confirm".

    Either the catalog is refused at start (naming the key) or every Confirm is refused
    with the "No approvers are set" hint that refusals.not_an_approver already has."""
    def no_approvers(text: str) -> str:
        return _demo(text).replace(DEMO_APPROVERS, "approvers = []")

    try:
        load_catalog(bots.write_catalog("no-approvers", no_approvers))
    except CatalogError as exc:
        assert "approvers" in str(exc)
        return
    bot = await bots.start("no-approvers", no_approvers)
    slack = bot.world.slack
    card_ts = await _propose_card(bot, ALICE_ID)
    mark = await _max_audit_id(bot)
    result = await slack.click(bot.events_url, action_id=CONFIRM, message_ts=card_ts,
                               user_id=DAVE, channel_id="C0INCIDENT")
    # Whichever comes first: a refusal for dave, or (the bug) the rollback moving on.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        rollbacks = await bot.runtime.deps.changes.history("api")
        replies = [c for c in slack.calls_to("response_url")
                   if _same_url(c.args["response_url"], result.response_url)]
        if replies or rollbacks[0].state != State.PROPOSED:
            break
        await asyncio.sleep(0.05)
    assert [(r.state, r.confirmed_by) for r in rollbacks] == [(State.PROPOSED, None)], (
        "a service with no approvers let a non-approver confirm")
    assert replies and "No approvers are set" in _reply_text(replies[0].args)
    assert not bot.world.google.calls_to(UPDATE_SERVICE)
    assert await _audit_since(bot, mark) == [(DAVE, "confirm", "denied")]
