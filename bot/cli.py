"""`rollbot` / `python -m bot`: serve, worker, socket, emulate, migrate, shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.catalog import Catalog, CatalogError, load_catalog
from bot.config import Settings
from bot.logs import setup_logging

log = logging.getLogger("rollbot")


class StartupError(Exception):
    """Configuration that stops the bot from starting; the message says what to fix."""


def _settings() -> Settings:
    """Settings from the environment; a bad value stops start-up naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise StartupError(f"invalid environment: {problems} (see .env.example)") from None


def _problem(error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"])
    # The value is shown to help, except where it may be a credential.
    secret = any(word in name for word in ("TOKEN", "SECRET", "URL"))
    return f"{name}{'' if secret else '=' + repr(error['input'])}: {error['msg']}"


def _load(require: Sequence[str] = ()) -> tuple[Settings, Catalog]:
    settings = _settings()
    missing = [name for name in settings.missing_for_serving() if name in require]
    if missing:
        raise StartupError(
            f"missing environment variables: {', '.join(missing)} (see .env.example; "
            "`rollbot emulate` prints a working set for the emulators)")
    try:
        catalog = load_catalog(settings.rollbot_config)
    except CatalogError as exc:
        raise StartupError(str(exc)) from exc
    return settings, catalog


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


SERVING = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "REDIS_URL")


def serve_with_workers(host: str) -> None:
    """`rollbot serve`: the HTTP listener here, the job worker in ROLLBOT_WORKERS
    child processes (see bot/worker_processes.py), or in-process with 0."""
    from bot import worker_processes

    gc.disable()  # until start-up's imports are done (worker_processes.settle_heap)
    settings, catalog = _load(require=SERVING)  # a configuration error stops before forking
    if settings.workers == 0:
        import bot.runtime  # what serving needs, imported before the heap settles

        worker_processes.settle_heap()
        asyncio.run(serve(host, settings, catalog, worker_pids=None))
        return
    clean_up = worker_processes.share_metrics_between_processes()
    try:
        import bot.runtime  # noqa: F401  (everything imported once, shared by the forks)

        pids = worker_processes.fork_workers(
            settings.workers, lambda: asyncio.run(work(settings, catalog)) or 0)
        asyncio.run(serve(host, settings, catalog, worker_pids=pids))
    finally:
        clean_up()


async def serve(host: str, settings: Settings, catalog: Catalog,
                worker_pids: list[int] | None) -> None:
    from bot.runtime import Runtime, serve_http
    from bot.worker_processes import WorkerSupervisor

    supervisor = (WorkerSupervisor(worker_pids, grace_seconds=settings.shutdown_grace_seconds)
                  if worker_pids is not None else None)
    try:
        runtime = await Runtime.start(settings, catalog, run_worker=supervisor is None)
    except BaseException:
        if supervisor is not None:
            await supervisor.stop()
        raise
    runner, url = await serve_http(runtime, host, settings.port)
    if supervisor is not None:
        supervisor.start()
    log.info("rollbot listening on %s (POST /slack/events, GET /healthz, /readyz); "
             "jobs run %s", url, f"in worker processes {supervisor.pids}"
             if supervisor is not None else "in this process")
    try:
        await _wait_for_signal()
    finally:
        if supervisor is not None:
            supervisor.begin_stop()  # the workers' grace runs while the listener stops
        await runner.cleanup()  # no new requests; hand-offs already made are drained below
        await runtime.stop()
        if supervisor is not None:
            await supervisor.stop()


def work_for(supervisor: int | None) -> None:
    """`rollbot worker`, on its own or as a replacement `rollbot serve` started
    (`supervisor`: the listener's pid), set up as its first workers are."""
    from bot import worker_processes

    if supervisor is not None:
        gc.disable()  # until start-up's imports are done (worker_processes.settle_heap)
    settings, catalog = _load(require=SERVING)
    if supervisor is not None:
        import bot.runtime  # noqa: F401  (imported before the heap settles)

        worker_processes.set_up_worker(supervisor)
    asyncio.run(work(settings, catalog))


async def work(settings: Settings, catalog: Catalog) -> None:
    """`rollbot worker`: run jobs (and crash recovery) only; no HTTP."""
    from bot.runtime import Runtime

    runtime = await Runtime.start(settings, catalog)
    log.info("rollbot worker %s running jobs", os.getpid())
    try:
        await _wait_for_signal()
    finally:
        await runtime.stop()


async def socket_mode() -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.runtime import Runtime

    settings, catalog = _load(require=SERVING)
    if not settings.slack_app_token.get_secret_value():
        raise StartupError("missing environment variable: SLACK_APP_TOKEN (xapp-…) for Socket Mode")
    runtime = await Runtime.start(settings, catalog)
    handler = AsyncSocketModeHandler(runtime.bolt, settings.slack_app_token.get_secret_value())
    await handler.connect_async()
    log.info("rollbot connected over Socket Mode")
    try:
        await _wait_for_signal()
    finally:
        await handler.close_async()
        await runtime.stop()


async def emulate(with_stores: bool, slack_port: int, google_port: int, target_port: int) -> None:
    from integrations.emulators.launcher import EmulatedWorld

    # Handlers first: a SIGINT/SIGTERM while the servers start still stops them all
    # (start finishes, then everything is stopped in order) instead of leaking them.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    world = await EmulatedWorld.start(
        with_stores=with_stores, slack_port=slack_port, google_port=google_port,
        target_port=target_port)
    try:
        if stop.is_set():
            return
        slack = world.slack.base_url
        print("rollbot emulators are running on loopback:")
        print(f"  Slack Web API   {world.slack.api_url}")
        print(f"  Google Cloud    {world.google.address} (gRPC: Cloud Run, Secret Manager, "
              "Logging)")
        print(f"  target app      {world.target.url}/medicalcor-api/health")
        if with_stores:
            await world.start_app(world.database_url, world.redis_url)
            assert world.app is not None
            print("  Postgres, Redis embedded (see DATABASE_URL, REDIS_URL)")
            print(f"  the app's flags {world.app.database} (table feature_flags), admin API "
                  f"{world.app.api.base_url}, kill switches in Redis db 1 (see APP_*)")
        print("\n# Paste into another shell, then run `rollbot serve`:")
        print(world.env_block())
        print("\n# Then, from any shell: deliver `/rollback api` to the bot on $PORT (default "
              "3000) and read what it said:")
        print(f"curl -s -X POST {slack}/_emulator/command -H 'Content-Type: application/json' "
              "-d '{\"app_url\": \"http://127.0.0.1:'\"${PORT:-3000}\"'/slack/events\", "
              "\"text\": \"api\", \"user_id\": \"U0ALICE\", \"channel_id\": \"C0INCIDENT\"}'")
        print(f"curl -s '{slack}/_emulator/calls?method=response_url'")
        print(f"curl -s '{slack}/_emulator/messages?channel=C0INCIDENT'", flush=True)
        await stop.wait()
    finally:
        await world.stop()


async def run_migrations() -> None:
    from bot.stores.migrations import migrate

    settings = _settings()
    if not settings.database_url:
        raise StartupError("missing environment variable: DATABASE_URL")
    applied = await migrate(settings.database_url)
    print("applied: " + (", ".join(applied) if applied else "nothing (schema is current)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollbot", description="Slack ChatOps bot for deployment rollbacks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve the Slack app over HTTP on $PORT")
    p_serve.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    p_worker = sub.add_parser(
        "worker", help="run jobs only (`serve` starts $ROLLBOT_WORKERS of these)")
    p_worker.add_argument("--supervised-by", type=int, metavar="PID",
                          help="set by `rollbot serve` for the workers it starts: stop when "
                               "PID exits, run at niceness 19")
    sub.add_parser("socket", help="run the Slack app over Socket Mode ($SLACK_APP_TOKEN)")
    p_emulate = sub.add_parser("emulate", help="start Slack/Google/target-app emulators")
    p_emulate.add_argument("--no-stores", action="store_true",
                           help="don't start embedded Postgres and Redis")
    p_emulate.add_argument("--slack-port", type=int, default=0)
    p_emulate.add_argument("--google-port", type=int, default=0)
    p_emulate.add_argument("--target-port", type=int, default=0)
    sub.add_parser("migrate", help="apply database migrations to $DATABASE_URL")
    p_shell = sub.add_parser(
        "shell", help="try rollbot in this terminal: emulated Slack, Cloud Run and stores")
    p_shell.add_argument("--script", type=Path, metavar="FILE",
                         help="run FILE's lines as input, print the transcript, exit 1 on "
                              "a problem (see docs/demo.rollbot)")
    p_shell.add_argument("--keep", action="store_true",
                         help="keep the embedded Postgres and Redis data after exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        if args.command == "serve":
            serve_with_workers(args.host)
        elif args.command == "worker":
            work_for(args.supervised_by)
        elif args.command == "socket":
            asyncio.run(socket_mode())
        elif args.command == "emulate":
            asyncio.run(emulate(not args.no_stores, args.slack_port, args.google_port,
                                args.target_port))
        elif args.command == "migrate":
            asyncio.run(run_migrations())
        elif args.command == "shell":
            from bot.shell import main as shell_main

            if args.script is not None and not args.script.is_file():
                raise StartupError(f"no such script: {args.script}")
            return shell_main(args.script, keep=args.keep)
    except StartupError as exc:
        print(f"rollbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
