"""The load generator: a separate process, so its CPU is not the server's event loop.

    python bench/loadgen.py SPEC.json

SPEC: {"url": ..., "secret": ..., "phases": [{"name", "concurrency", "warmup",
"bodies": [form body, ...], "tags": [...]}]}. The first `warmup` bodies of a phase
are sent (and discarded) before the measured ones, at the same concurrency, over
the same keep-alive connections (so they are open before timing starts). An
optional "pause" (seconds) makes each worker wait after each request (untimed).

Phases run one at a time, driven by lines on stdin so the runner can let the
server's after-ack work (rollbot's job queue) drain in between: on a line, sign and
send the warm-up, print {"warm": name}; on the next line, send the measured bodies
and print {"name", "latencies" (s), "statuses", "tags", "wall" (s)}. Bodies are
signed right before they are sent (a batch at a time), outside the timing: the clock
for a request starts just before the POST and stops when the whole response body
has been read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HEADERS = {"Content-Type": "application/x-www-form-urlencoded",
           "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
TIMEOUT = 30.0  # seconds for one request; past it, status -1
FAILED = -1


def sign(secret: bytes, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {**HEADERS, "X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": ts}


def request_bytes(url: str, secret: bytes, body: bytes) -> bytes:
    """The whole signed HTTP/1.1 request, built before the clock starts."""
    parts = urlsplit(url)
    headers = {"Host": parts.netloc, **sign(secret, body), "Content-Length": str(len(body))}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST {parts.path} HTTP/1.1\r\n{head}\r\n".encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time.

    Hand-written rather than aiohttp's client, which cost about as much CPU per
    request as the floor server itself (0.26 ms): on two vCPUs a heavy generator
    becomes what is measured, and its share of the CPUs what differs between servers.
    Reads only what a Bolt ack is: a status line and a Content-Length body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:  # not what a Bolt ack looks like; don't guess where it ends
            self._finish(exception=ConnectionError("response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[:end + 4 + length]
        self._finish(status=status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._finish(exception=ConnectionError("connection closed"))

    def _finish(self, status: int = 0, exception: Exception | None = None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if exception is not None:
                waiter.set_exception(exception)
            else:
                waiter.set_result(status)

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


class Client:
    """`concurrency` connections to one server, kept open across phases."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.connections: list[Connection] = []

    async def connection(self, slot: int) -> Connection:
        while len(self.connections) <= slot:
            self.connections.append(Connection())
        conn = self.connections[slot]
        if conn.transport is None or conn.transport.is_closing():
            conn = self.connections[slot] = Connection()
            await asyncio.get_running_loop().create_connection(
                lambda: conn, self.host, self.port)
        return conn

    def reset(self, slot: int) -> None:
        old = self.connections[slot]
        if old.transport is not None:
            old.transport.close()
        self.connections[slot] = Connection()

    def close(self) -> None:
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()


async def fire(client: Client, requests: list[bytes], concurrency: int,
               pause: float = 0.0) -> tuple[list[float], list[int], float]:
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    next_index = iter(range(len(requests)))
    loop = asyncio.get_running_loop()

    async def worker(slot: int) -> None:
        for i in next_index:
            started = time.perf_counter()
            try:
                conn = await client.connection(slot)
                answer = conn.send(requests[i])
                timer = loop.call_later(TIMEOUT, answer.cancel)
                try:
                    statuses[i] = await answer
                finally:
                    timer.cancel()
            except (OSError, asyncio.CancelledError, ValueError):
                statuses[i] = FAILED
                client.reset(slot)  # unknown state (a late answer may still come): start afresh
            latencies[i] = time.perf_counter() - started
            if pause:
                await asyncio.sleep(pause)

    began = time.perf_counter()
    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    return latencies, statuses, time.perf_counter() - began


def load_spec(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text(encoding="utf-8")))


async def main(spec_path: str) -> None:
    spec = load_spec(spec_path)
    url, secret = spec["url"], spec["secret"].encode()
    client = Client(url)
    loop = asyncio.get_running_loop()
    try:
        for phase in spec["phases"]:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return  # the runner went away
            bodies = [b.encode() for b in phase["bodies"]]
            warm = phase["warmup"]
            if warm:
                await fire(client, [request_bytes(url, secret, b) for b in bodies[:warm]],
                           phase["concurrency"])
            print(json.dumps({"warm": phase["name"]}), flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            signed = [request_bytes(url, secret, b) for b in bodies[warm:]]
            latencies, statuses, wall = await fire(client, signed, phase["concurrency"],
                                                   phase.get("pause", 0.0))
            print(json.dumps({"name": phase["name"], "latencies": latencies,
                              "statuses": statuses, "tags": phase["tags"][warm:],
                              "wall": wall}), flush=True)
    finally:
        client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
