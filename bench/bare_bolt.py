"""A bare Bolt app that only acks `/rollback`: the comparison for rollbot's ack latency.

Served exactly as rollbot serves its app (bot/app.py + bot/runtime.serve_http):
slack_bolt's aiohttp adapter (to_bolt_request / to_aiohttp_response) on an aiohttp
web.Application behind web.AppRunner(access_log=None) + web.TCPSite. Signature
verification is on (same middleware as rollbot). AsyncApp has no start-time token
check (its authorization middleware calls auth.test once, lazily, then caches it); that
one call goes to the Slack emulator (SLACK_API_URL), as rollbot's does.

    python bench/bare_bolt.py --mode default|floor --port 0

`default` is AsyncApp's default (process_before_response=False: the listener runs
in the background and the runner polls for the ack every 10 ms); `floor` is
process_before_response=True, the least work Bolt does for an ack. Prints
`listening <url>` once serving; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build(mode: str) -> web.Application:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"],
                            base_url=os.environ["SLACK_API_URL"])
    bolt = AsyncApp(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=(mode == "floor"),
        raise_error_for_unhandled_request=False,
    )

    @bolt.command("/rollback")
    async def rollback(ack: Any) -> None:
        await ack()

    async def slack_events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    return app


async def main(mode: str, host: str, port: int) -> None:
    runner = web.AppRunner(build(mode), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    print(f"listening http://{bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("default", "floor"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.mode, args.host, args.port))
