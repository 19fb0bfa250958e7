"""200 concurrent interactions, on different services and on the same one:
no deadlock, no double execution, every one answered."""

from __future__ import annotations

import asyncio
import json

from bot.changes.model import State
from tests.e2e.conftest import RunningBot
from tests.e2e.test_rollback_flow import ALICE, CONFIRM, UPDATE_SERVICE, _posted, _text

COMMANDS = 200


def _answered(bot: RunningBot) -> int:
    """Commands answered after the ack: response_url posts plus plan cards."""
    slack = bot.world.slack
    cards = [c for c in slack.calls_to("chat.postMessage") if "Rollback plan" in _text(c)]
    return len(slack.calls_to("response_url")) + len(cards)


async def test_200_concurrent_commands_and_clicks(running_bot: RunningBot) -> None:
    slack = running_bot.world.slack
    texts = ["api 00014-def", "web 00013-pqr", "api", "web", "history api"]
    results = await asyncio.gather(*(
        slack.send_command(running_bot.events_url, texts[i % len(texts)], **ALICE)
        for i in range(COMMANDS)))
    assert all(r.status == 200 for r in results)
    assert max(r.elapsed for r in results) < 3.0  # every ack within Slack's 3 s

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while _answered(running_bot) < COMMANDS:
        assert loop.time() < deadline, f"only {_answered(running_bot)} of {COMMANDS} answered"
        await asyncio.sleep(0.1)

    cards = [c for c in slack.calls_to("chat.postMessage") if "Rollback plan" in _text(c)]
    # One active rollback per service: one card each, every other proposal refused.
    assert sorted(json.dumps(c.args["blocks"]).count("medicalcor-web") > 0 for c in cards) == [
        False, True]
    refusals = [c for c in slack.calls_to("response_url") if "already has an active" in _text(c)]
    assert len(refusals) == 2 * (COMMANDS // len(texts)) - 2

    # Now everyone clicks Confirm on both cards at once.
    clicks = [
        slack.click(running_bot.events_url, action_id=CONFIRM, user_id=user,
                    channel_id="C0INCIDENT", message_ts=card.response["ts"])
        for card in cards for user in ("U0BOB", "U0CAROL") * 25
    ]
    assert all(r.status == 200 for r in await asyncio.gather(*clicks))
    for service in ("api", "web"):
        for _ in range(300):
            rollback = (await running_bot.runtime.deps.changes.history(service, 1))[0]
            if rollback.state in (State.SUCCEEDED, State.FAILED):
                break
            await asyncio.sleep(0.05)
        assert rollback.state == State.SUCCEEDED, (service, rollback.state, rollback.error)
    assert len(running_bot.world.google.calls_to(UPDATE_SERVICE)) == 2  # one per service
    announcements = [c for c in slack.calls_to("chat.postMessage")
                     if str(c.args.get("text", "")).startswith("Initiating rollback")]
    assert len(announcements) == 2
    await slack.wait_for("response_url", _posted("already confirmed"))
