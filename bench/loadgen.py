"""The load generator: a separate process, so its CPU is not the server's event loop.

    python bench/loadgen.py SPEC.json

SPEC: {"url": ..., "secret": ..., "phases": [{"name", "concurrency", "warmup",
"bodies": [form body, ...], "tags": [...]}]}. The first `warmup` bodies of a phase
are sent (and discarded) before the measured ones, at the same concurrency, over
the same keep-alive connector (so connections are open before timing starts). An
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

import aiohttp

HEADERS = {"Content-Type": "application/x-www-form-urlencoded",
           "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}


def sign(secret: bytes, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {**HEADERS, "X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": ts}


async def fire(session: aiohttp.ClientSession, url: str, requests: list[tuple[bytes, dict]],
               concurrency: int, pause: float = 0.0) -> tuple[list[float], list[int], float]:
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    next_index = iter(range(len(requests)))

    async def worker() -> None:
        for i in next_index:
            body, headers = requests[i]
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[i] = resp.status
            except (aiohttp.ClientError, TimeoutError):
                statuses[i] = -1
            latencies[i] = time.perf_counter() - started
            if pause:
                await asyncio.sleep(pause)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - began


def load_spec(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text(encoding="utf-8")))


async def main(spec_path: str) -> None:
    spec = load_spec(spec_path)
    url, secret = spec["url"], spec["secret"].encode()
    biggest = max(p["concurrency"] for p in spec["phases"])
    connector = aiohttp.TCPConnector(limit=biggest, limit_per_host=biggest,
                                     keepalive_timeout=300, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=30)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for phase in spec["phases"]:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return  # the runner went away
            bodies = [b.encode() for b in phase["bodies"]]
            warm = phase["warmup"]
            if warm:
                await fire(session, url, [(b, sign(secret, b)) for b in bodies[:warm]],
                           phase["concurrency"])
            print(json.dumps({"warm": phase["name"]}), flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            signed = [(b, sign(secret, b)) for b in bodies[warm:]]
            latencies, statuses, wall = await fire(session, url, signed,
                                                   phase["concurrency"], phase.get("pause", 0.0))
            print(json.dumps({"name": phase["name"], "latencies": latencies,
                              "statuses": statuses, "tags": phase["tags"][warm:],
                              "wall": wall}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
