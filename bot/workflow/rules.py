"""Whose rules a change follows: each catalog service it touches (its requesters,
approvers, two-person rule), or, for a kind with rules of its own (a flag or
kill-switch group), that group's. Read from the catalog as it is now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.authz import Rules
from bot.catalog import Catalog
from bot.changes.kind import own_rules
from bot.changes.model import Change
from bot.changes.registry import kind_named
from bot.plans import Plan


def rules_for(catalog: Catalog, kind: str, service: str, args: Mapping[str, Any],
              plan: Plan | None = None) -> list[tuple[str, Rules]] | None:
    """[(what they belong to, rules)], or None when that is no longer in the catalog."""
    own = own_rules(kind_named(kind))
    if own is not None:
        found = own.rules(catalog, args)
        return None if found is None else [found]
    names = plan.touched if plan is not None else (service,)
    if any(name not in catalog.services for name in names):
        return None
    return [(name, catalog.services[name]) for name in names]


def rules_of_change(catalog: Catalog, change: Change) -> list[tuple[str, Rules]] | None:
    plan = Plan.from_json(change.plan)
    return rules_for(catalog, plan.kind, change.service, change.spec.get("request") or {},
                     plan)
