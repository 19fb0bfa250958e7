"""What a finished change offers next, end to end: Undo (its exact inverse, with the
same rules), Restore latest routing, and their refusals."""

from __future__ import annotations

import asyncio

from bot.changes.model import Change, State
from bot.ids import FollowUpAction
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.slack import SlackCall
from tests.e2e.conftest import RunningBot, start_bot
from tests.e2e.test_rollback_flow import (
    CONFIRM,
    SERVING,
    TARGET,
    UPDATE_SERVICE,
    _click,
    _posted,
    _propose,
    _text,
)

UNDO = FollowUpAction.UNDO.value
RESTORE_LATEST = FollowUpAction.RESTORE_LATEST.value


async def _change(bot: RunningBot, change_id: int) -> Change:
    change = await bot.runtime.deps.changes.get(change_id)
    assert change is not None
    return change


async def _finished(bot: RunningBot, *, after_id: int = 0, within: float = 15) -> Change:
    """The newest change with an id above `after_id`, once it is over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        newest = (await bot.runtime.deps.changes.history("api", limit=1) or [None])[0]
        if newest is not None and newest.id > after_id and newest.state in (
                State.SUCCEEDED, State.FAILED, State.CANCELLED):
            return newest
        assert loop.time() < deadline, f"no finished change after #{after_id}: {newest}"
        await asyncio.sleep(0.05)


async def _card_with(bot: RunningBot, change: Change, action_id: str) -> SlackCall:
    """The change's card as last updated, once it shows the button."""
    slack = bot.world.slack
    return await slack.wait_for(
        "chat.update", lambda c: c.args.get("ts") == change.card_ts and action_id in _text(c),
        timeout=10)


async def _rolled_back(bot: RunningBot) -> tuple[SlackCall, Change]:
    card = await _propose(bot)
    await _click(bot, card, CONFIRM, "U0BOB")
    done = await _finished(bot)
    assert done.state == State.SUCCEEDED
    return card, done


async def test_undo_restores_the_exact_split_before_with_the_same_rules(
        running_bot: RunningBot) -> None:
    slack, world = running_bot.world.slack, running_bot.world.world
    card, done = await _rolled_back(running_bot)
    assert world.serving("medicalcor-api") == {TARGET: 100}
    await _card_with(running_bot, done, UNDO)

    await _click(running_bot, card, UNDO, "U0ALICE")  # anyone who may request
    undo_card = await slack.wait_for(
        "chat.postMessage", _posted(f"This undoes change #{done.id}"), timeout=10)
    assert f"Rollback plan: api → {SERVING}" in _text(undo_card)
    assert undo_card.args["channel"] == "C0INCIDENT"
    proposed = (await running_bot.runtime.deps.changes.history("api", limit=1))[0]
    assert proposed.state == State.PROPOSED and proposed.spec["undo_of"] == done.id
    assert proposed.spec["traffic"] == {SERVING: 100}

    # The same confirm rules: the requester of the undo cannot confirm it.
    await _click(running_bot, undo_card, CONFIRM, "U0ALICE")
    await slack.wait_for("response_url", _posted("needs a second person"), timeout=10)
    assert (await _change(running_bot, proposed.id)).state == State.PROPOSED
    await _click(running_bot, undo_card, CONFIRM, "U0BOB")
    undone = await _finished(running_bot, after_id=done.id)
    assert world.serving("medicalcor-api") == {SERVING: 100}  # exactly what served before
    # …which is the broken revision the rollback left: the undo went through, and
    # verification says so (it is still an undoable change).
    assert undone.state == State.FAILED and (undone.error or "").startswith(
        "verification failed")
    announcement = await slack.wait_for(
        "chat.postMessage", _posted(f"this undoes #{done.id}"), timeout=10)
    assert announcement.args["text"].startswith(f"Initiating rollback of api to revision {SERVING}")

    # An undo of an undo is allowed, and says so.
    await _card_with(running_bot, undone, UNDO)
    await _click(running_bot, undo_card, UNDO, "U0BOB")
    again = await slack.wait_for("chat.postMessage", _posted("an undo of an undo"), timeout=10)
    assert f"Rollback plan: api → {TARGET}" in _text(again)


async def test_a_traffic_rollback_offers_restore_latest_routing(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    _, done = await _rolled_back(running_bot)
    verdict = await slack.wait_for("chat.postMessage", _posted("Rollback verified"), timeout=10)
    assert RESTORE_LATEST in _text(verdict) and "pinned" in _text(verdict)
    assert verdict.args["thread_ts"] == done.thread_ts


async def test_follow_ups_are_refused_outside_incident_channels_and_for_non_requesters(
        running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    _, done = await _rolled_back(running_bot)
    await _card_with(running_bot, done, UNDO)
    google_updates = len(running_bot.world.google.calls_to(UPDATE_SERVICE))

    result = await slack.click(running_bot.events_url, action_id=UNDO, value=str(done.id),
                               user_id="U0ALICE", channel_id="C0GENERAL")
    assert result.status == 200
    await slack.wait_for("response_url", _posted("^(inc|incident)[-_]"), timeout=10)

    for value in ("abc", "0", str(done.id + 1000)):  # malformed, or no such change
        before = len(slack.calls_to("response_url"))
        await slack.click(running_bot.events_url, action_id=UNDO, value=value,
                          user_id="U0ALICE", channel_id="C0INCIDENT")
        await slack.wait_for("response_url", lambda c, n=before: (
            len(slack.calls_to("response_url")) > n and "out of date" in _text(c)), timeout=10)
    await asyncio.sleep(0.2)
    assert (await running_bot.runtime.deps.changes.history("api", limit=1))[0].id == done.id
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == google_updates


async def test_restore_latest_routing_from_the_verdict(running_bot: RunningBot) -> None:
    slack, world = running_bot.world.slack, running_bot.world.world
    _, done = await _rolled_back(running_bot)
    verdict = await slack.wait_for("chat.postMessage", _posted("Rollback verified"), timeout=10)
    await _click(running_bot, verdict, RESTORE_LATEST, "U0ALICE")
    card = await slack.wait_for("chat.postMessage", _posted("Rollback plan: api → LATEST"),
                                timeout=10)
    # LATEST is the revision the rollback went back from: the card warns so.
    assert f"LATEST is `{SERVING}`, which serves nothing now" in _text(card)
    await _click(running_bot, card, CONFIRM, "U0BOB")
    restored = await _finished(running_bot, after_id=done.id)
    assert restored.spec["to_latest"] is True
    targets = world.services["medicalcor-api"].traffic
    assert [(t.latest, t.percent) for t in targets] == [(True, 100)]
    assert world.serving("medicalcor-api") == {SERVING: 100}


async def test_undo_needs_someone_who_may_request(
        emulated: EmulatedWorld, database_url: str, fresh_redis_url: str) -> None:
    """Undo proposes a change: only the service's requesters may (here alice and bob)."""
    text = emulated.catalog_path.read_text(encoding="utf-8")
    approvers = 'approvers = ["U0BOB", "U0CAROL"]'
    assert approvers in text
    emulated.catalog_path.write_text(text.replace(
        approvers, approvers + '\nrequesters = ["U0ALICE", "U0BOB"]'), encoding="utf-8")
    bot = await start_bot(emulated, database_url, fresh_redis_url)
    try:
        slack = emulated.slack
        card, done = await _rolled_back(bot)
        await _card_with(bot, done, UNDO)
        await _click(bot, card, UNDO, "U0DAVE")
        refusal = await slack.wait_for("response_url",
                                       _posted("You can't request rollbacks of `api`"),
                                       timeout=10)
        assert "U0ALICE" in _text(refusal) or "alice" in _text(refusal)
        await asyncio.sleep(0.3)
        assert (await bot.runtime.deps.changes.history("api", limit=1))[0].id == done.id
    finally:
        await bot.stop()
