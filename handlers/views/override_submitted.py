"""The Override blocker modal, submitted: a reason too short is said under the input
(the modal stays open); otherwise the modal closes and the override is handed off."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot import router
from bot.deps import from_context
from bot.ids import OverrideView
from bot.inbound import OverrideSubmission
from bot.messages.override import reason_problem


async def override_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                             context: Any) -> None:
    submission = OverrideSubmission.from_view(body, view, OverrideView.REASON_BLOCK.value,
                                              OverrideView.REASON_INPUT.value)
    problem = reason_problem(submission.reason)
    if problem is not None:
        await ack(response_action="errors",
                  errors={OverrideView.REASON_BLOCK.value: problem})
        return
    if submission.change_id is None:
        await ack(response_action="errors", errors={
            OverrideView.REASON_BLOCK.value: "This form is out of date: run the command "
                                             "again for a fresh plan card."})
        return
    await ack()
    deps = from_context(context)
    router.hand_off_override(deps, submission)
