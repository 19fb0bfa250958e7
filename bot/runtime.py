"""One running rollbot process: stores, clients, job worker, Bolt app.

Start order matters: migrations first (so every replica sees the schema),
then pools and clients, then the job worker, and the HTTP listener last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.app import build_bolt_app, build_web_app
from bot.catalog import Catalog
from bot.changes.audit import AuditLog
from bot.changes.store import ChangeStore
from bot.config import Settings
from bot.defer import BatchDeferrer
from bot.deps import DEPS_KEY, Deps
from bot.dispatch import Dispatcher
from bot.jobs import build_job_app
from bot.logs import register_secret_env_patterns, register_secret_values, url_passwords
from bot.metrics import cloud_run_call
from bot.slack_out import SlackOut
from bot.stores.db import check_database, open_pool
from bot.stores.migrations import migrate
from bot.stores.redis_store import Deduplicator, check_redis, open_redis
from bot.workflow import recovery
from integrations.cloud_run import (
    CloudRun,
    GoogleCloudRun,
    Revision,
    RevisionConfig,
    ServiceSnapshot,
    ServiceState,
    TemplateEdit,
)
from integrations.gcp import GoogleClients, make_google_clients
from integrations.google_retry import RetryPolicy
from integrations.http_checks import HttpChecker
from integrations.logs import GoogleCloudLogs
from integrations.monitoring import GoogleCloudMonitoring
from integrations.secret_manager import GoogleSecretManager
from integrations.secret_values import SecretValues

log = logging.getLogger(__name__)

# Past the grace period: cancelling the jobs left, recording them and unregistering
# the worker take well under this.
WORKER_WIND_DOWN_SECONDS = 1.5


class ListenerHasNoCloudRun:
    """Cloud Run as `rollbot serve`'s HTTP listener sees it: absent. Its listeners
    only ack and hand off (handlers never call cloud APIs; jobs do, in the worker
    processes), so it builds no Google clients: their gRPC channel would start seven
    threads beside the event loop that answers Slack, for nothing. A call here is a
    bug in rollbot, hence loud."""

    @staticmethod
    def _bug() -> RuntimeError:
        return RuntimeError("the HTTP listener does not call Cloud Run; hand the work to a job")

    async def get_service(self, service: str, region: str) -> ServiceState:
        raise self._bug()

    async def list_revisions(self, service: str, region: str, limit: int = 10
                             ) -> list[Revision]:
        raise self._bug()

    async def get_revision(self, service: str, region: str, revision: str) -> Revision:
        raise self._bug()

    async def read_service(self, service: str, region: str) -> ServiceSnapshot:
        raise self._bug()

    async def get_revision_config(
        self, service: str, region: str, revision: str) -> RevisionConfig:
        raise self._bug()

    async def update_service(
        self, snapshot: ServiceSnapshot, *, traffic: Mapping[str, int] | None = None,
        to_latest: bool = False, edit: TemplateEdit | None = None,
        revision_name: str | None = None, labels: Mapping[str, str] | None = None,
        validate_only: bool = False, tags: Mapping[str, str] | None = None,
    ) -> str:
        raise self._bug()

    async def wait_operation(self, operation_name: str) -> None:
        raise self._bug()


class Runtime:
    def __init__(self, deps: Deps, bolt: AsyncApp, google: GoogleClients | None) -> None:
        self.deps = deps
        self.bolt = bolt
        self.google = google
        self.web_app = build_web_app(bolt, self.readiness)
        self._worker: asyncio.Task[Any] | None = None

    @classmethod
    async def start(
        cls, settings: Settings, catalog: Catalog, *, run_worker: bool = True,
        retry_policy: RetryPolicy | None = None,
    ) -> Runtime:
        """`run_worker=False`: a listener whose jobs run in worker processes
        (`rollbot worker`, or the ones `rollbot serve` starts); crash recovery
        is then theirs too, and so are the Google clients."""
        register_secret_values(
            settings.slack_bot_token.get_secret_value(),
            settings.slack_signing_secret.get_secret_value(),
            settings.slack_app_token.get_secret_value(),
            *url_passwords(settings.database_url, settings.redis_url),
        )
        register_secret_env_patterns(catalog.masking.secret_env_patterns)
        await migrate(settings.database_url)
        pool = await open_pool(settings.database_url)
        redis = await open_redis(settings.redis_url)
        google = make_google_clients(settings.gcp_emulator_host or None) if run_worker else None
        cloud_run: CloudRun = ListenerHasNoCloudRun() if google is None else GoogleCloudRun(
            google.services, google.revisions, catalog.gcp.project, policy=retry_policy,
            on_call=cloud_run_call)
        slack = SlackOut.connect(
            settings.slack_bot_token.get_secret_value(), settings.slack_api_base,
            min_interval=settings.slack_post_interval)
        jobs = build_job_app(settings.database_url)
        await jobs.open_async()
        deps = Deps(
            settings=settings, catalog=catalog, pool=pool, redis=redis, slack=slack,
            cloud_run=cloud_run, jobs=jobs, dispatcher=Dispatcher(),
            changes=ChangeStore(pool), audit=AuditLog(pool), dedupe=Deduplicator(redis),
            http=HttpChecker(),
            monitoring=None if google is None else GoogleCloudMonitoring(
                google.monitoring, catalog.gcp.project, policy=retry_policy),
            logs=None if google is None else GoogleCloudLogs(
                google.logging, catalog.gcp.project, policy=retry_policy),
            secrets=None if google is None else GoogleSecretManager(
                google.secrets, catalog.gcp.project, policy=retry_policy),
            secret_values=None if google is None else SecretValues(
                google.secrets, policy=retry_policy),
            handoffs=BatchDeferrer(lambda: jobs.connector.pool,  # type: ignore[attr-defined]
                                   lambda name: jobs.tasks[name].queue),
        )
        runtime = cls(deps, build_bolt_app(deps), google)
        if run_worker:
            runtime.start_worker()
            await runtime.recover()
        return runtime

    async def recover(self) -> None:
        """Finish or fail what a crashed process left behind, and say so in Slack."""
        try:
            await recovery.retry_stalled_jobs(self.deps)
            await recovery.resume_orphans(self.deps)
            await recovery.resume_rollouts(self.deps)
        except Exception:
            log.exception("crash recovery at start failed; the periodic job will retry")

    def start_worker(self) -> None:
        self._worker = asyncio.create_task(self.deps.jobs.run_worker_async(
            concurrency=self.deps.settings.job_concurrency,
            install_signal_handlers=False,
            additional_context={DEPS_KEY: self.deps},
            listen_notify=True,
            fetch_job_polling_interval=1.0,  # fallback when a NOTIFY is missed
            delete_jobs="successful",
            # Past it, procrastinate cancels the jobs; bot/jobs.py queues them again.
            shutdown_graceful_timeout=self.deps.settings.shutdown_grace_seconds,
        ), name="procrastinate-worker")

    async def readiness(self) -> dict[str, str]:
        database, redis = await asyncio.gather(
            check_database(self.deps.pool), check_redis(self.deps.redis))
        return {"database": database, "redis": redis}

    async def stop(self) -> None:
        """Stop in order: the worker takes no new job and gives the running ones the
        grace period (ROLLBOT_SHUTDOWN_GRACE_SECONDS), past which they are cancelled
        and queued again; the listener's hand-offs are written meanwhile. Only then
        the job app, the HTTP sessions, the Google clients and the pools close, so
        no job still running finds them closed."""
        worker_stopped = asyncio.ensure_future(self._stop_worker())
        await self.deps.handoffs.drain()
        await self.deps.dispatcher.drain()
        await worker_stopped
        await self.deps.jobs.close_async()
        await self.deps.http.close()
        await self.deps.slack.close()
        if self.google is not None:
            await self.google.close()
        await self.deps.redis.aclose()
        await self.deps.pool.close()

    async def _stop_worker(self) -> None:
        if self._worker is None:
            return
        # procrastinate's graceful stop: a cancelled run_worker_async stops fetching,
        # waits for the running jobs (shutdown_graceful_timeout), cancels the rest,
        # records their outcome and unregisters the worker.
        self._worker.cancel()
        within = self.deps.settings.shutdown_grace_seconds + WORKER_WIND_DOWN_SECONDS
        done, _ = await asyncio.wait({self._worker}, timeout=within)
        if not done:  # e.g. the database is gone and its listener keeps retrying
            log.error("the job worker did not stop within %.1f s; closing anyway", within)
        for task in done:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()


async def serve_http(runtime: Runtime, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve the app; returns the runner and the base URL (port 0 picks a free port)."""
    runner = web.AppRunner(runtime.web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"
