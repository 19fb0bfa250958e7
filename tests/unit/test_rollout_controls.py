"""Who may stop a running rollout (Pause, Abort): its requester and confirmer, the
service's requesters and its approvers; nobody else when requesters are listed."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.catalog import ServiceSection
from bot.changes.model import Change, State
from bot.workflow.rollout_controls import _may_stop


async def _no_groups(group_id: str) -> list[str]:
    return []


def _change() -> Change:
    now = dt.datetime.now(dt.UTC)
    return Change(id=1, kind="gradual", subject="api", service="api", spec={}, before={},
                  after=None, state=State.ROLLING_OUT, requested_by="U0ALICE",
                  confirmed_by="U0BOB", channel_id="C0", card_ts=None, thread_ts=None,
                  summary_ts=None, verdict=None, error=None, dry_run=False, plan={},
                  created_at=now, updated_at=now)


@pytest.mark.parametrize("user, allowed", [
    ("U0ALICE", True),  # requested it
    ("U0BOB", True),  # confirmed it
    ("U0CAROL", True),  # an approver
    ("U0DAVE", True),  # one of the service's requesters
    ("U0MALLORY", False),  # none of these
])
async def test_only_requesters_and_approvers_may_stop_it(user: str, allowed: bool) -> None:
    service = ServiceSection(cloud_run_service="medicalcor-api",
                             requesters=["U0ALICE", "U0DAVE"], approvers=["U0BOB", "U0CAROL"])
    decision = await _may_stop(service, user, _change(), _no_groups)
    assert decision.allowed is allowed
    if not allowed:
        assert "requesters and approvers" in decision.reason


async def test_without_listed_requesters_anyone_who_may_request_may_stop_it() -> None:
    service = ServiceSection(cloud_run_service="medicalcor-api", approvers=["U0BOB"])
    assert (await _may_stop(service, "U0MALLORY", _change(), _no_groups)).allowed
