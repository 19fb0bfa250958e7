"""Who may do what: authorization is data in the catalog (requesters, approvers
as user or user-group ids, the two-person rule, the channel rule)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from bot.catalog import Catalog

log = logging.getLogger(__name__)

GroupMembers = Callable[[str], Awaitable[list[str]]]


class Rules(Protocol):
    """Who may request and confirm: a catalog service's, or a flag or kill-switch
    group's (bot/catalog_flags.py)."""

    @property
    def requesters(self) -> Sequence[str]: ...

    @property
    def approvers(self) -> Sequence[str]: ...

    @property
    def require_second_person(self) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # why not, for the audit and the ephemeral refusal
    code: str = ""  # machine-readable: channel | requester | second_person | approver


ALLOW = Decision(True)


async def is_member(user_id: str, principals: Iterable[str], group_members: GroupMembers) -> bool:
    """True if user_id is listed directly or belongs to a listed user group (S…)."""
    principals = list(principals)
    if user_id in principals:
        return True
    for principal in principals:
        if principal.startswith("S"):
            try:
                if user_id in await group_members(principal):
                    return True
            except Exception as exc:  # a group we cannot read grants nothing
                log.warning("could not read members of user group %s: %s", principal, exc)
    return False


def channel_allowed(catalog: Catalog, channel_name: str) -> Decision:
    if catalog.is_incident_channel(channel_name):
        return ALLOW
    return Decision(False, f"channel #{channel_name} does not match "
                           f"`{catalog.slack.incident_channel_pattern}`", "channel")


async def may_request(service: Rules, user_id: str, group_members: GroupMembers
                      ) -> Decision:
    if not service.requesters or await is_member(user_id, service.requesters, group_members):
        return ALLOW
    return Decision(False, "not in the service's requesters", "requester")


async def may_confirm(service: Rules, user_id: str, requested_by: str,
                      group_members: GroupMembers) -> Decision:
    if service.require_second_person and user_id == requested_by:
        return Decision(False, "the requester cannot confirm their own rollback",
                        "second_person")
    # No approvers listed means nobody may confirm: a safe default, and the
    # refusal tells operators which catalog key to fill in.
    if not await is_member(user_id, service.approvers, group_members):
        return Decision(False, "not in the service's approvers", "approver")
    return ALLOW


async def may_cancel(service: Rules, user_id: str, requested_by: str,
                     group_members: GroupMembers) -> Decision:
    """The requester may withdraw their request; approvers may turn it down."""
    if user_id == requested_by:
        return ALLOW
    if await is_member(user_id, service.approvers, group_members):
        return ALLOW
    return Decision(False, "only the requester or an approver may cancel", "approver")
