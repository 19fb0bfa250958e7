"""The application's own switch stores, for the sandbox and the tests: a flags table in
its own database (beside rollbot's on the same server, never rollbot's), a flag behind
the admin-API emulator, and kill switches in another Redis db. The catalog groups that
name them, and the environment variables those groups read.

Demo world: flags `new-scoring-model` (on) and `ai-triage` (off) in the database group
`app`, `remote-ranking` (on) behind the admin API (group `remote`), kill switches
`ai_scoring` and `payments` (off) in group `app`.
"""

from __future__ import annotations

import dataclasses
import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from redis.asyncio import Redis

from integrations.emulators.flags_api import FlagsApiEmulator

APP_REDIS_DB = 1  # rollbot's own Redis data lives in db 0
DEMO_FLAGS = (("new-scoring-model", True), ("ai-triage", False))
API_FLAGS = {"remote-ranking": True}
SWITCHES = ("ai_scoring", "payments")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def catalog_groups(approvers: tuple[str, ...]) -> str:
    listed = ", ".join(f'"{a}"' for a in approvers)
    return (
        "[flags.app]\nbackend = \"database\"\ndatabase_url_env = \"APP_DATABASE_URL\"\n"
        f"approvers = [{listed}]\nrequire_second_person = true\nservices = [\"api\"]\n\n"
        "[flags.remote]\nbackend = \"api\"\nbase_url_env = \"APP_ADMIN_API_URL\"\n"
        "api_key_env = \"APP_ADMIN_API_KEY\"\n"
        f"approvers = [{listed}]\nrequire_second_person = true\n\n"
        "[killswitches.app]\nbackend = \"redis\"\nredis_url_env = \"APP_REDIS_URL\"\n"
        f"switches = {list(SWITCHES)!r}\n".replace("'", '"')
        + f"approvers = [{listed}]\nrequire_second_person = true\nservices = [\"api\"]\n")


@dataclasses.dataclass
class AppWorld:
    server_url: str  # the Postgres server's URL (its admin database)
    database: str
    redis_url: str
    api: FlagsApiEmulator

    @property
    def database_url(self) -> str:
        return _with_db(self.server_url, self.database)

    def env(self) -> dict[str, str]:
        return {"APP_DATABASE_URL": self.database_url, "APP_REDIS_URL": self.redis_url,
                "APP_ADMIN_API_URL": self.api.base_url, "APP_ADMIN_API_KEY": self.api.api_key}

    @classmethod
    async def start(cls, postgres_url: str, redis_url: str,
                    host: str = "127.0.0.1") -> AppWorld:
        """Its own database on `postgres_url`'s server, db 1 of `redis_url`'s server."""
        name = f"medicalcor_app_{secrets.token_hex(4)}"
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as c:
            await c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        async with await psycopg.AsyncConnection.connect(_with_db(postgres_url, name),
                                                         autocommit=True) as c:
            await c.execute("CREATE TABLE feature_flags (name text PRIMARY KEY, "
                            "enabled boolean NOT NULL, updated_at timestamptz)")
            for flag, enabled in DEMO_FLAGS:
                await c.execute("INSERT INTO feature_flags VALUES (%s, %s, now())",
                                (flag, enabled))
        app_redis = _with_db(redis_url, str(APP_REDIS_DB))
        client = Redis.from_url(app_redis)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        api = FlagsApiEmulator(API_FLAGS, api_key="app-admin-" + secrets.token_hex(8))
        await api.start(host)
        return cls(postgres_url, name, app_redis, api)

    async def stop(self) -> None:
        await self.api.stop()
        async with await psycopg.AsyncConnection.connect(self.server_url,
                                                         autocommit=True) as c:
            await c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.database)))
