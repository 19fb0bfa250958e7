"""What a Confirm/Cancel click names. The change id on a button: only str(id) is
accepted (the jobs name their change by it). The buttons block's id: the change's kind
and subject, a hint for the kind's early read."""

from __future__ import annotations

import pytest

from bot.ids import kind_and_subject_of_plan_actions, plan_actions_block_id
from bot.inbound import ButtonClick


def _click(value: str) -> ButtonClick:
    return ButtonClick(user_id="U1", channel_id="C1", channel_name="inc-x", message_ts="1.1",
                       response_url="https://example.invalid/r", action_id="rollback.confirm",
                       value=value, action_ts="1.2")


@pytest.mark.parametrize("value, expected", [("7", 7), ("123456", 123456)])
def test_canonical_ids_are_accepted(value: str, expected: int) -> None:
    assert _click(value).change_id() == expected


@pytest.mark.parametrize("value", ["", "0", "07", " 7", "7 ", "+7", "-7", "1_0", "7.0", "abc",
                                   "\u0667", "\uff17", "9" * 19, '{"id": 7}'])
def test_anything_else_names_no_change(value: str) -> None:
    assert _click(value).change_id() is None


@pytest.mark.parametrize(("block_id", "named"), [
    ("rollback.plan.actions:traffic:api", ("traffic", "api")),
    ("rollback.plan.actions:image:web", ("image", "web")),
    ("rollback.plan.actions:api", ("traffic", "api")),  # cards posted before change kinds
    ("rollback.plan.actions", None),  # a card posted before block ids named the service
    ("rollback.plan.actions:", None),
    ("rollback.plan.header:api", None),
    ("", None),
    ("b", None),
])
def test_the_kind_and_subject_a_plan_cards_buttons_block_names(
        block_id: str, named: tuple[str, str] | None) -> None:
    assert kind_and_subject_of_plan_actions(block_id) == named
    if named is not None and block_id.count(":") == 2:
        assert plan_actions_block_id(*named) == block_id
