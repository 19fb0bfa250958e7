"""App wiring: the Bolt app (listeners + middleware) and the HTTP server routes
(/slack/events, /healthz, /readyz, /metrics)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger import get_bolt_app_logger
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

import handlers
from bot import metrics
from bot.deps import DEPS_KEY, Deps
from bot.logs import trace_context, trace_of

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


class RollbotApp(AsyncApp):
    """AsyncApp that puts rollbot's Deps in every request's context, where listeners
    find them (bot.deps.from_context). A Bolt middleware would do the same at the
    cost of its per-request argument injection, about a tenth of an ack's work."""

    def __init__(self, deps: Deps, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rollbot_deps = deps

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        req.context[DEPS_KEY] = self._rollbot_deps
        return await super().async_dispatch(req)

    def _init_context(self, req: AsyncBoltRequest) -> None:
        """Bolt's, minus its per-request AsyncWebClient: since 1.15 it builds one for
        every request (reading the proxy variables and the platform's User-Agent each
        time) so that a listener may swap its token. That was ~7 % of an ack's CPU
        under load, and rollbot's listeners never use it (they post through
        deps.slack); one workspace, one token, so every request shares the app's
        client. The keys are Bolt's (a test compares them on every upgrade)."""
        req.context["logger"] = get_bolt_app_logger(
            app_name=self.name, base_logger=self._base_logger)
        req.context["token"] = self._token
        req.context["client"] = self._async_client
        req.context["listener_runner"] = self.listener_runner


def build_bolt_app(deps: Deps) -> AsyncApp:
    app = RollbotApp(
        deps,
        client=deps.slack.client,
        signing_secret=deps.settings.slack_signing_secret.get_secret_value(),
        # Listeners ack first and hand off durable work themselves, so Bolt
        # need not run them in the background and poll for the ack.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )

    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("listener failed: %s: %s", type(error).__name__, error)

    app.error(on_error)
    handlers.register(app)
    return app


def build_web_app(bolt: AsyncApp, readiness: ReadinessCheck) -> web.Application:
    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()  # to the response: what Slack waits for
        # Here rather than in an aiohttp middleware: only this route's work logs, and
        # every request pays for a middleware's wrapping.
        traced = trace_context.set(trace_of(request.headers))
        try:
            bolt_request = await to_bolt_request(request)
            bolt_response = await bolt.async_dispatch(bolt_request)
            return await to_aiohttp_response(bolt_response)
        finally:
            trace_context.reset(traced)
            metrics.observe_ack(time.perf_counter() - started)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await readiness()
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return web.Response(
            status=200 if ready else 503, text=json.dumps(body), content_type="application/json")

    web_app = web.Application(client_max_size=1024 * 1024)
    web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_get("/metrics", metrics.metrics_handler)
    return web_app
