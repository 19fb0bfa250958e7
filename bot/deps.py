"""What listeners and jobs need, built once per process and injected
(by bot.app.RollbotApp into listeners, by procrastinate's context into jobs)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from bot.catalog import Catalog
from bot.config import Settings
from bot.dispatch import Dispatcher
from bot.slack_out import SlackOut
from integrations.cloud_run import CloudRun

if TYPE_CHECKING:
    import procrastinate
    from psycopg_pool import AsyncConnectionPool
    from redis.asyncio import Redis

    from bot.changes.audit import AuditLog
    from bot.changes.store import ChangeStore
    from bot.defer import BatchDeferrer
    from bot.stores.redis_store import Deduplicator
    from integrations.http_checks import HttpChecker
    from integrations.logs import CloudLogs
    from integrations.monitoring import CloudMonitoring
    from integrations.secret_manager import SecretManager
    from integrations.secret_values import SecretValues


@dataclasses.dataclass
class Deps:
    settings: Settings
    catalog: Catalog
    pool: AsyncConnectionPool
    redis: Redis
    slack: SlackOut
    cloud_run: CloudRun
    jobs: procrastinate.App
    dispatcher: Dispatcher
    changes: ChangeStore
    audit: AuditLog
    dedupe: Deduplicator
    http: HttpChecker
    handoffs: BatchDeferrer  # the listener's cheap, batched path into `jobs`
    monitoring: CloudMonitoring | None = None  # per-revision metrics, where configured
    logs: CloudLogs | None = None
    secrets: SecretManager | None = None  # jobs only, as Cloud Run
    secret_values: SecretValues | None = None  # the flags admin API's key, if a secret


DEPS_KEY = "deps"


def from_context(context: Any) -> Deps:
    """The Deps injected by bot.app.RollbotApp into a Bolt context or a job context."""
    deps = context[DEPS_KEY] if isinstance(context, dict) else context.additional_context[DEPS_KEY]
    assert isinstance(deps, Deps)
    return deps


async def group_members(deps: Deps, group_id: str) -> list[str]:
    """Members of a Slack user group (approvers may be given as groups)."""
    result = await deps.slack.client.usergroups_users_list(usergroup=group_id)
    users: list[object] = result.get("users") or []
    return [str(user) for user in users]
