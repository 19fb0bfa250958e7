"""A service's own Prometheus metrics: 5xx rate and p95 latency over a window.

The runbook's ``curl /metrics | grep http_requests_total | grep status="5"``, done
properly: two scrapes of the Prometheus text format, parsed with prometheus_client,
and the difference between them. p95 comes from the latency histogram's buckets by
linear interpolation, as Prometheus' ``histogram_quantile`` does it.

One scrape is one GET: no retries, no redirects followed, at most 4 MiB read.
Failures raise MetricsScrapeError with a short reason for people.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from .http_checks import network_failure

MAX_BODY_BYTES = 4 * 1024 * 1024
ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"
QUANTILE = 0.95
# One exposed series: sample name and its labels, sorted.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclasses.dataclass(frozen=True)
class Scrape:
    at: float  # time.monotonic() when the answer arrived
    requests: float  # sum of the request counter over all series
    errors_5xx: float  # the part of it whose status label starts with "5"
    # (le seconds, cumulative count) of the latency histogram, summed over series,
    # ascending; the last bound is +inf when the histogram is well formed.
    buckets: tuple[tuple[float, float], ...]
    # Every counter and bucket series read, by name and labels: a restart between two
    # scrapes shows as one of them going down or vanishing, whatever the sums do.
    series: Mapping[SeriesKey, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class WindowMetrics:
    requests: float  # requests served between the two scrapes
    error_rate: float | None  # share of them answered 5xx; None without requests
    p95_latency_ms: float | None  # None without observations in the histogram


class MetricsScrapeError(Exception):
    """A scrape failed: unreachable, non-200, too big, or not Prometheus text."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient  # worth trying again later (network, timeout, 5xx)


# --- fetching -------------------------------------------------------------------------

async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None


async def _fetch(session: aiohttp.ClientSession, url: str, timeout: float) -> str:  # noqa: ASYNC109
    try:
        async with session.get(
            url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Accept": ACCEPT},
        ) as response:
            if response.status != 200:
                reason = f" {response.reason}" if response.reason else ""
                raise MetricsScrapeError(
                    f"metrics at {url} answered {response.status}{reason}, not 200",
                    transient=response.status >= 500 or response.status == 429)
            raw = await _read_limited(response, MAX_BODY_BYTES)
    except MetricsScrapeError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        raise MetricsScrapeError(
            f"cannot scrape {url}: {network_failure(exc, timeout)}", transient=True) from exc
    if raw is None:
        raise MetricsScrapeError(f"metrics at {url} are larger than "
                                 f"{MAX_BODY_BYTES // (1024 * 1024)} MiB; not read")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetricsScrapeError(f"metrics at {url} are not UTF-8 text") from exc


# --- parsing --------------------------------------------------------------------------

def _bound(le: str) -> float:
    value = float(le)  # "+Inf" parses to inf
    if math.isnan(value):
        raise ValueError(f"bucket bound le={le!r}")
    return value


class _NotANumber(ValueError):
    pass


def _finite(value: float, key: SeriesKey) -> float:
    """A counter or bucket value; NaN or ±Inf would turn every sum after it into one."""
    if not math.isfinite(value):
        name, labels = key
        shown = ",".join(f'{k}="{v}"' for k, v in labels)
        raise _NotANumber(f"{name}{{{shown}}} is {value}, not a finite number")
    return value


def parse(text: str, *, counter: str = "http_requests_total",
          histogram: str = "http_request_duration_seconds", at: float | None = None,
          source: str = "metrics") -> Scrape:
    """A Scrape from Prometheus text exposition; MetricsScrapeError if unusable."""
    base = counter.removesuffix("_total")
    counter_samples = {counter, base + "_total"}
    bucket_sample = histogram + "_bucket"
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    series: dict[SeriesKey, float] = {}
    counter_declared = False
    try:
        for family in text_string_to_metric_families(text):
            if family.name in (counter, base):
                counter_declared = True
            for sample in family.samples:
                is_counter = sample.name in counter_samples
                if not is_counter and not (sample.name == bucket_sample
                                           and "le" in sample.labels):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                value = series[key] = _finite(sample.value, key)
                if is_counter:
                    counter_declared = True
                    requests += value
                    if str(sample.labels.get("status", "")).startswith("5"):
                        errors += value
                else:
                    le = _bound(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + value
    except _NotANumber as exc:
        raise MetricsScrapeError(f"{source}: {exc}") from exc
    except Exception as exc:  # the parser raises ValueError, IndexError, ... on bad input
        raise MetricsScrapeError(
            f"{source} is not Prometheus text format ({type(exc).__name__}: {exc})") from exc
    if not counter_declared:
        raise MetricsScrapeError(f"{source} has no {counter} counter")
    return Scrape(at=time.monotonic() if at is None else at, requests=requests,
                  errors_5xx=errors, buckets=tuple(sorted(buckets.items())), series=series)


async def scrape(session: aiohttp.ClientSession, url: str, *, timeout: float,  # noqa: ASYNC109
                 counter: str = "http_requests_total",
                 histogram: str = "http_request_duration_seconds") -> Scrape:
    """GET ``url`` once and sum the request counter and latency histogram."""
    text = await _fetch(session, url, timeout)
    return parse(text, counter=counter, histogram=histogram, at=time.monotonic(),
                 source=f"metrics at {url}")


# --- the window -----------------------------------------------------------------------

def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (le, cumulative count) pairs, in seconds.

    Linear interpolation inside the bucket holding the rank; the first bucket's
    lower bound is 0; a rank in the +Inf bucket yields the highest finite bound.
    None where Prometheus answers NaN: fewer than two buckets, or no +Inf bucket
    (how many were slower than the last bound is unknown).
    """
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    # Cumulative counts must not decrease; jitter between series is clamped like Prometheus.
    cumulative: list[tuple[float, float]] = []
    high = 0.0
    for le, count in ordered:
        high = max(high, count)
        cumulative.append((le, high))
    total = cumulative[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):
                return lower  # the highest finite bound (0 if there is none)
            if le <= 0 or count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def restarted(before: Scrape, after: Scrape) -> bool:
    """Whether the target restarted between the scrapes: a counter or bucket series
    went down or vanished (a new process has not exposed it yet), or, for scrapes
    without series, a total or bucket sum went down."""
    if before.series and after.series:
        return any(after.series.get(key, 0.0) < value for key, value in before.series.items())
    before_buckets = dict(before.buckets)
    return (after.requests < before.requests or after.errors_5xx < before.errors_5xx
            or any(count < before_buckets.get(le, 0.0) for le, count in after.buckets))


def window(before: Scrape, after: Scrape) -> WindowMetrics:
    """What happened between two scrapes of the same target.

    Series by series, a counter's increase is ``after - before``, from 0 for a series
    first seen in ``after``. A restart (``restarted``) resets every series of the
    process at once, so ``after`` itself is the whole window's delta, as Prometheus'
    increase() takes the value after a reset; the requests of the old process between
    the first scrape and its end are not known. A histogram whose bucket bounds
    changed is read from ``after`` alone too (a new layout: a new process).
    """
    reset = restarted(before, after)
    if reset:
        requests, errors = after.requests, after.errors_5xx
    else:
        requests = after.requests - before.requests
        errors = after.errors_5xx - before.errors_5xx
    before_buckets = dict(before.buckets)
    new_layout = {le for le, _ in after.buckets} != set(before_buckets)
    buckets = after.buckets if reset or new_layout else tuple(
        (le, count - before_buckets[le]) for le, count in after.buckets)
    p95 = histogram_quantile(QUANTILE, buckets)
    return WindowMetrics(
        requests=requests,
        error_rate=errors / requests if requests > 0 else None,
        p95_latency_ms=round(p95 * 1000.0, 1) if p95 is not None else None,
    )


async def measure(session: aiohttp.ClientSession, url: str, *, interval: float,
                  timeout: float,  # noqa: ASYNC109
                  sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                  counter: str = "http_requests_total",
                  histogram: str = "http_request_duration_seconds") -> WindowMetrics:
    """Scrape, wait ``interval`` seconds, scrape again: the window between them."""
    before = await scrape(session, url, timeout=timeout, counter=counter, histogram=histogram)
    await sleep(interval)
    after = await scrape(session, url, timeout=timeout, counter=counter, histogram=histogram)
    return window(before, after)
