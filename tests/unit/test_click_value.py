"""What a Confirm/Cancel click names. The rollback id on a button: only str(id) is
accepted, because recovery matches a confirm job to its rollback by that text. The
buttons block's id: the service, a hint for reading Cloud Run early."""

from __future__ import annotations

import pytest

from bot.ids import plan_actions_block_id, service_of_plan_actions
from bot.inbound import ButtonClick
from bot.workflow.decide import rollback_id_of


def _click(value: str) -> ButtonClick:
    return ButtonClick(user_id="U1", channel_id="C1", channel_name="inc-x", message_ts="1.1",
                       response_url="https://example.invalid/r", action_id="rollback.confirm",
                       value=value, action_ts="1.2")


@pytest.mark.parametrize("value, expected", [("7", 7), ("123456", 123456)])
def test_canonical_ids_are_accepted(value: str, expected: int) -> None:
    assert rollback_id_of(_click(value)) == expected


@pytest.mark.parametrize("value", ["", "0", "07", " 7", "7 ", "+7", "-7", "1_0", "7.0", "abc",
                                   "\u0667", "\uff17", "9" * 19, '{"id": 7}'])
def test_anything_else_names_no_rollback(value: str) -> None:
    assert rollback_id_of(_click(value)) is None


@pytest.mark.parametrize(("block_id", "service"), [
    ("rollback.plan.actions:api", "api"),
    ("rollback.plan.actions:web", "web"),
    ("rollback.plan.actions", None),  # a card posted before block ids named the service
    ("rollback.plan.actions:", None),
    ("rollback.plan.header:api", None),
    ("", None),
    ("b", None),
])
def test_the_service_a_plan_cards_buttons_block_names(block_id: str, service: str | None) -> None:
    assert service_of_plan_actions(block_id) == service
    if service is not None:
        assert plan_actions_block_id(service) == block_id
