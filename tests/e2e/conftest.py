"""The running app over HTTP, against the emulators and real Postgres/Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from bot.catalog import Catalog, load_catalog
from bot.config import Settings
from bot.runtime import Runtime, serve_http
from integrations.cloud_run import RetryPolicy
from integrations.emulators.launcher import EmulatedWorld
from integrations.emulators.world import default_world

FAST_RETRY = RetryPolicy(attempts=3, total_seconds=5, initial_wait=0.01, max_wait=0.05,
                         call_timeout=3, operation_timeout=3)


@dataclasses.dataclass
class RunningBot:
    world: EmulatedWorld
    runtime: Runtime
    url: str
    catalog: Catalog

    runner: web.AppRunner | None = None

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.runtime.stop()


async def start_bot(emulated: EmulatedWorld, database_url: str, redis_url: str) -> RunningBot:
    env = emulated.env() | {"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                            "ROLLBOT_SLACK_POST_INTERVAL": "0.01"}
    settings = Settings(**env)  # type: ignore[arg-type]
    catalog = load_catalog(emulated.catalog_path)
    runtime = await Runtime.start(settings, catalog, retry_policy=FAST_RETRY)
    runner, url = await serve_http(runtime, "127.0.0.1", 0)
    return RunningBot(emulated, runtime, url, catalog, runner)


@pytest_asyncio.fixture
async def emulated() -> AsyncIterator[EmulatedWorld]:
    world = await EmulatedWorld.start(
        world=default_world(bad_latest=True), operation_delay=0.02,
        verification_window=1.5, verification_interval=0.2,
        measure_after=(0.0, 1.5), scrape_interval=0.2)
    yield world
    await world.stop()


@pytest_asyncio.fixture
async def running_bot(
    emulated: EmulatedWorld, database_url: str, fresh_redis_url: str
) -> AsyncIterator[RunningBot]:
    bot = await start_bot(emulated, database_url, fresh_redis_url)
    yield bot
    await bot.stop()
