"""The application's feature-flag admin API, emulated: what `ApiFlags` talks to in tests
and the sandbox, speaking the same wire protocol as the real one.

`GET /admin/feature-flags` → `[{"name", "enabled"}]`; `GET|PATCH
/admin/feature-flags/{name}` (PATCH body `{"enabled": bool}`), the key in `X-Api-Key`
(401 without it, 403 with a wrong one), 404 for an unknown flag, 400 for a bad body.
Faults: `inject(status, count)` answers the next requests with that status, or drops
the connection (status 0); `delay` slows each answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web

PATH = "/admin/feature-flags"


@dataclasses.dataclass
class _Fault:
    status: int  # 0: close the connection without answering
    count: int


class FlagsApiEmulator:
    def __init__(self, flags: dict[str, bool] | None = None, *, api_key: str = "emulated-key",
                 header: str = "X-Api-Key") -> None:
        self.flags: dict[str, bool] = dict(flags or {})
        self.api_key, self.header = api_key, header
        self.requests: list[tuple[str, str]] = []  # (method, path), faults included
        self.delay = 0.0
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def inject(self, status: int, count: int = 1) -> None:
        self._faults.append(_Fault(status, count))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.add_routes([web.get(PATH, self._list), web.get(PATH + "/{name}", self._get),
                        web.patch(PATH + "/{name}", self._patch)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _gate(self, request: web.Request) -> web.Response | None:
        """Faults, the delay and the key, before any answer."""
        self.requests.append((request.method, request.path))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._faults:
            fault = self._faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self._faults.pop(0)
            if fault.status == 0:
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError("emulated dropped connection")
            return web.json_response({"message": "injected fault"}, status=fault.status)
        key = request.headers.get(self.header)
        if key is None:
            return web.json_response({"message": f"missing {self.header}"}, status=401)
        if key != self.api_key:
            return web.json_response({"message": "invalid API key"}, status=403)
        return None

    async def _list(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        return refused or web.json_response(
            [{"name": n, "enabled": e} for n, e in sorted(self.flags.items())])

    async def _flag(self, request: web.Request) -> tuple[str, web.Response | None]:
        """The flag the path names, or the refusal to answer with (fault, key, 404)."""
        name = request.match_info["name"]
        refused = await self._gate(request)
        if refused is None and name not in self.flags:
            refused = web.json_response({"message": f"no flag {name}"}, status=404)
        return name, refused

    async def _get(self, request: web.Request) -> web.Response:
        name, refused = await self._flag(request)
        return refused or web.json_response({"name": name, "enabled": self.flags[name]})

    async def _patch(self, request: web.Request) -> web.Response:
        name, refused = await self._flag(request)
        if refused:
            return refused
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
            return web.json_response({"message": 'body must be {"enabled": true|false}'},
                                     status=400)
        self.flags[name] = body["enabled"]
        return web.json_response({"name": name, "enabled": self.flags[name]})
