"""One process holding everything `rollbot shell` needs: the emulated world (Slack,
Google Cloud, the target app, embedded Postgres and Redis) and rollbot itself,
serving HTTP on 127.0.0.1 exactly as `rollbot serve` does.

Slash commands and clicks go through the Slack emulator, signed, to the bot's
`/slack/events`, so the shell exercises the same path a real workspace does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from bot.runtime import Runtime
    from bot.shell.choices import Choice
    from bot.stores.embedded import EmbeddedPostgres, EmbeddedRedis
    from integrations.emulators.launcher import EmulatedWorld
    from integrations.emulators.slack.delivery import DeliveryResult

    Store = EmbeddedPostgres | EmbeddedRedis

CHANNEL_ID = "C0DEMO"
CHANNEL_NAME = "inc-demo"
HOST = "127.0.0.1"


@dataclasses.dataclass
class ShellSession:
    world: EmulatedWorld
    runtime: Runtime
    runner: web.AppRunner
    url: str
    started_in: float
    stores: str  # where Postgres and Redis come from, for the banner
    _own_stores: list[Store] = dataclasses.field(default_factory=list)

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    @classmethod
    async def start(cls, *, keep: bool = False) -> ShellSession:
        """Start the world and the bot; on any failure, stop what was started."""
        from bot.catalog import load_catalog
        from bot.config import Settings
        from bot.runtime import Runtime, serve_http

        started = time.monotonic()
        world, stores, own = await _start_world(keep)
        runtime: Runtime | None = None
        try:
            world.slack.add_channel(CHANNEL_ID, CHANNEL_NAME)
            settings = Settings(**world.env())  # type: ignore[arg-type]
            runtime = await Runtime.start(settings, load_catalog(world.catalog_path))
            runner, url = await serve_http(runtime, HOST, 0)
        except BaseException:
            if runtime is not None:
                with contextlib.suppress(Exception):
                    await runtime.stop()
            await _stop_world(world, own)
            raise
        return cls(world, runtime, runner, url, time.monotonic() - started, stores, own)

    async def stop(self) -> None:
        """Stop in reverse order: HTTP, bot (jobs drained), emulators, stores."""
        try:
            await self.runner.cleanup()
        finally:
            try:
                await self.runtime.stop()
            finally:
                await _stop_world(self.world, self._own_stores)

    async def send_command(self, text: str, *, user_id: str,
                           command: str = "/rollback") -> DeliveryResult:
        return await self.world.slack.send_command(
            self.events_url, text, user_id=user_id, channel_id=CHANNEL_ID, command=command)

    async def click(self, choice: Choice, *, user_id: str) -> DeliveryResult:
        return await self.world.slack.click(
            self.events_url, action_id=choice.button.action_id, value=choice.button.value,
            user_id=user_id, channel_id=choice.channel_id, message_ts=choice.message_ts,
            is_ephemeral=choice.is_ephemeral)


    async def submit(self, text: str, *, user_id: str) -> DeliveryResult | None:
        """Type `text` into the user's open form (its first input) and submit it;
        None when no form is open."""
        views = self.world.slack.open_views(user_id)
        if not views:
            return None
        inputs = [b for b in views[-1]["blocks"] if b.get("type") == "input"]
        values = {inputs[0]["element"]["action_id"]: text} if inputs else {}
        return await self.world.slack.submit_view(self.events_url, user_id=user_id,
                                                  values=values)

    def close_form(self, *, user_id: str) -> bool:
        if not self.world.slack.open_views(user_id):
            return False
        self.world.slack.close_view(user_id)
        return True


async def _start_world(keep: bool) -> tuple[EmulatedWorld, str, list[Store]]:
    """The emulators, plus stores: $DATABASE_URL and $REDIS_URL when both are set, else
    embedded servers (left on disk with `keep`). Embedded servers start first, before
    any gRPC thread exists, so their fork/exec never races gRPC's fork handlers."""
    from bot.stores.embedded import EmbeddedPostgres, EmbeddedRedis
    from integrations.emulators.launcher import EmulatedWorld
    from integrations.emulators.world import default_world

    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    own: list[Store] = []
    try:
        if database_url and redis_url:
            stores = "from $DATABASE_URL and $REDIS_URL"
        else:
            pg = EmbeddedPostgres(keep=keep)
            own.append(pg)
            await pg.start()
            rd = EmbeddedRedis(keep=keep)
            own.append(rd)
            await rd.start()
            database_url, redis_url = pg.url, rd.url
            stores = (f"embedded; data kept in {pg.data_dir} and {rd.data_dir}" if keep
                      else "embedded; data removed on exit")
        world = await EmulatedWorld.start(world=default_world(bad_latest=True), host=HOST)
    except BaseException:
        await _stop_stores(own)
        raise
    world.database_url, world.redis_url = database_url, redis_url
    try:
        app = await world.start_app(database_url, redis_url)
    except BaseException:
        await _stop_world(world, own)
        raise
    # The bot runs in this process: the catalog's groups read these variables here.
    os.environ.update(app.env())
    return world, stores, own


async def _stop_stores(stores: list[Store]) -> None:
    for store in reversed(stores):
        with contextlib.suppress(Exception):
            await store.stop()


async def _stop_world(world: EmulatedWorld, own_stores: list[Store]) -> None:
    try:
        await world.stop()
    finally:
        await _stop_stores(own_stores)
