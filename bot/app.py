"""App wiring: the Bolt app (listeners + middleware) and the HTTP server routes
(/slack/events, /healthz, /readyz, /metrics)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

import handlers
from bot import metrics
from bot.deps import DEPS_KEY, Deps
from bot.logs import trace_middleware

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


def build_bolt_app(deps: Deps) -> AsyncApp:
    app = AsyncApp(
        client=deps.slack.client,
        signing_secret=deps.settings.slack_signing_secret.get_secret_value(),
        # Listeners ack first and hand off durable work themselves, so Bolt
        # need not run them in the background and poll for the ack.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )

    async def inject_deps(context: Any, next: Callable[[], Awaitable[Any]]) -> Any:
        context[DEPS_KEY] = deps
        return await next()

    app.use(inject_deps)

    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("listener failed: %s: %s", type(error).__name__, error)

    app.error(on_error)
    handlers.register(app)
    return app


def build_web_app(bolt: AsyncApp, readiness: ReadinessCheck) -> web.Application:
    async def slack_events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await readiness()
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return web.Response(
            status=200 if ready else 503, text=json.dumps(body), content_type="application/json")

    web_app = web.Application(
        client_max_size=1024 * 1024,
        middlewares=[trace_middleware, metrics.ack_latency_middleware])
    web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_get("/metrics", metrics.metrics_handler)
    return web_app
