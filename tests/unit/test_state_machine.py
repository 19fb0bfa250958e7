from __future__ import annotations

import pytest

from bot.changes.model import ACTIVE_STATES, FINAL_STATES, TRANSITIONS, State, can_transition


def test_every_state_has_a_rule_and_final_states_are_terminal() -> None:
    assert set(TRANSITIONS) == set(State)
    for state in FINAL_STATES:
        assert not TRANSITIONS[state]
    assert set(State) == ACTIVE_STATES | FINAL_STATES


@pytest.mark.parametrize(("current", "new"), [
    (State.PROPOSED, State.CONFIRMED), (State.PROPOSED, State.CANCELLED),
    (State.CONFIRMED, State.EXECUTING), (State.EXECUTING, State.VERIFYING),
    (State.VERIFYING, State.SUCCEEDED), (State.EXECUTING, State.FAILED),
])
def test_allowed(current: State, new: State) -> None:
    assert can_transition(current, new)


@pytest.mark.parametrize(("current", "new"), [
    (State.PROPOSED, State.EXECUTING),  # never without a confirmation
    (State.CONFIRMED, State.CANCELLED),  # too late to cancel once confirmed
    (State.SUCCEEDED, State.FAILED), (State.CANCELLED, State.CONFIRMED),
    (State.VERIFYING, State.EXECUTING),
])
def test_refused(current: State, new: State) -> None:
    assert not can_transition(current, new)


def test_every_active_state_can_reach_an_end() -> None:
    for start in ACTIVE_STATES:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & FINAL_STATES
