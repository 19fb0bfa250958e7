"""Shared by the contract tests: the Google emulator and the real clients on it, the
target app's fake clock, and a Slack app endpoint for the Slack emulator to deliver to.

All of it listens on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from urllib.parse import parse_qs

import pytest_asyncio
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from integrations.emulators.google import GoogleEmulator
from integrations.emulators.world import default_world
from integrations.gcp import GoogleClients, make_google_clients


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[GoogleEmulator]:
    """The Google emulator on the default world; long-running operations finish at once.

    A module that needs another world overrides this fixture; `clients` follows it.
    """
    emu = GoogleEmulator(default_world(), operation_delay=0.0)
    await emu.start()
    yield emu
    await emu.stop()


@pytest_asyncio.fixture
async def clients(emulator: GoogleEmulator) -> AsyncIterator[GoogleClients]:
    """The real asyncio GAPIC clients, made by the production factory, on `emulator`."""
    made = make_google_clients(emulator.address)
    yield made
    await made.close()


class FakeClock:
    """A clock for TargetApp that stands still until a test moves `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlackReceiver:
    """A minimal app endpoint that verifies Slack's signature the way Slack apps must
    (401 otherwise), records each verified body, and acks with `ack_body`.

    `async with SlackReceiver(secret) as receiver:` serves it on a free loopback port.
    """

    def __init__(self, secret: str, ack_body: str = "") -> None:
        self.verifier = SignatureVerifier(secret)
        self.bodies: list[bytes] = []
        self.ack_body = ack_body
        self.runner: web.AppRunner | None = None
        self.url = ""

    @property
    def forms(self) -> list[dict[str, str]]:
        """The verified bodies, read as the form posts Slack sends (first value of each)."""
        return [{k: v[0] for k, v in parse_qs(body.decode()).items()} for body in self.bodies]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401, text="invalid signature")
        self.bodies.append(body)
        return web.Response(text=self.ack_body, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/slack/events"

    async def __aenter__(self) -> SlackReceiver:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
