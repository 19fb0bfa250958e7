"""integrations.prom_metrics on the exposition texts a service's /metrics gives over
a window: per-status and per-path counter series, a process restart between the
two scrapes, series appearing late, NaN and +Inf samples, an idle window, a
missing counter family, a histogram without its +Inf bucket."""

from __future__ import annotations

import math

import pytest

from integrations.prom_metrics import (
    MetricsScrapeError,
    WindowMetrics,
    histogram_quantile,
    parse,
    window,
)

INF = math.inf
HEAD = ("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        "# HELP http_request_duration_seconds Latency.\n"
        "# TYPE http_request_duration_seconds histogram\n")


def exposition(counters: dict[tuple[str, str], float],
               buckets: dict[str, dict[float, float]] | None = None) -> str:
    """Text as prometheus_client writes it: counters by (path, status); cumulative
    buckets by path, each ending at +Inf unless left out by the caller."""
    lines = [HEAD]
    for (path, status), value in counters.items():
        lines.append(f'http_requests_total{{path="{path}",status="{status}"}} {value}\n')
    for path, by_le in (buckets or {}).items():
        for le, count in by_le.items():
            bound = "+Inf" if math.isinf(le) else repr(le)
            lines.append(f'http_request_duration_seconds_bucket{{le="{bound}",path="{path}"}} '
                         f"{count}\n")
        lines.append(f'http_request_duration_seconds_count{{path="{path}"}} '
                     f"{max(by_le.values())}\n")
    return "".join(lines)


def between(before: str, after: str) -> WindowMetrics:
    return window(parse(before, at=0.0), parse(after, at=30.0))


def test_a_steady_window_is_the_difference_per_series() -> None:
    before = exposition({("/a", "200"): 1000, ("/a", "503"): 10, ("/b", "200"): 500},
                        {"/a": {0.1: 900, 0.5: 1000, INF: 1010},
                         "/b": {0.1: 500, 0.5: 500, INF: 500}})
    after = exposition({("/a", "200"): 1090, ("/a", "503"): 20, ("/b", "200"): 600},
                       {"/a": {0.1: 980, 0.5: 1090, INF: 1110},
                        "/b": {0.1: 600, 0.5: 600, INF: 600}})
    got = between(before, after)
    assert got.requests == 200 and got.error_rate == pytest.approx(10 / 200)
    # 200 new: 180 under 0.1 s, 10 in (0.1, 0.5], 10 above: rank 190 is 0.5 s exactly
    assert got.p95_latency_ms == 500.0


def test_a_series_present_only_in_the_second_scrape_counts_from_zero() -> None:
    before = exposition({("/a", "200"): 1000}, {"/a": {0.1: 1000, INF: 1000}})
    after = exposition({("/a", "200"): 1080, ("/a", "500"): 20},  # the first 5xx
                       {"/a": {0.1: 1080, INF: 1100}})
    got = between(before, after)
    assert got.requests == 100 and got.error_rate == pytest.approx(0.2)


def test_a_restart_makes_the_second_scrape_the_whole_window() -> None:
    # The process restarted: /a's series start over, /b's new process has already
    # served more than the old one had, so the totals alone rise (55 -> 63).
    before = exposition({("/a", "200"): 50, ("/b", "200"): 5},
                        {"/a": {0.1: 50, INF: 50}, "/b": {0.1: 5, INF: 5}})
    after = exposition({("/a", "200"): 3, ("/b", "200"): 57, ("/b", "500"): 3},
                       {"/a": {0.1: 3, INF: 3}, "/b": {0.1: 60, INF: 60}})
    got = between(before, after)
    assert got.requests == 63 and got.error_rate == pytest.approx(3 / 63)
    assert got.p95_latency_ms == pytest.approx(100 * 0.95)  # all 63 under 0.1 s


def test_a_counter_reset_as_prometheus_rate_sees_it() -> None:
    # Second value below the first: the new value is the increase since the reset.
    before = exposition({("/a", "200"): 5000, ("/a", "500"): 50})
    after = exposition({("/a", "200"): 36, ("/a", "500"): 4})
    got = between(before, after)
    assert got.requests == 40 and got.error_rate == pytest.approx(0.1)
    assert got.p95_latency_ms is None  # no histogram on either side


def test_a_histogram_reset_alone_is_a_restart_for_the_counters_too() -> None:
    # Counters grew past their old values in the new process; the buckets did not.
    before = exposition({("/a", "200"): 10}, {"/a": {0.1: 10, 1.0: 10, INF: 10}})
    after = exposition({("/a", "200"): 30}, {"/a": {0.1: 2, 1.0: 30, INF: 30}})
    got = between(before, after)
    assert got.requests == 30  # not 20: all 30 were served since the restart
    assert got.p95_latency_ms == pytest.approx(100 + 900 * (28.5 - 2) / 28, abs=0.05)


def test_zero_requests_in_the_window_is_no_rate_and_no_latency() -> None:
    text = exposition({("/a", "200"): 1000, ("/a", "500"): 10},
                      {"/a": {0.1: 900, INF: 1010}})
    assert between(text, text) == WindowMetrics(requests=0, error_rate=None,
                                                p95_latency_ms=None)
    fresh = exposition({("/a", "200"): 0}, {"/a": {0.1: 0, INF: 0}})
    assert between(fresh, fresh) == WindowMetrics(0, None, None)


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_a_counter_that_is_not_a_number_is_refused(value: str) -> None:
    text = (HEAD + 'http_requests_total{status="200"} 10\n'
            f'http_requests_total{{status="500"}} {value}\n')
    with pytest.raises(MetricsScrapeError, match="not a finite number"):
        parse(text, source="metrics at http://127.0.0.1:1/metrics")


def test_a_bucket_that_is_not_a_number_is_refused() -> None:
    text = (HEAD + 'http_requests_total{status="200"} 10\n'
            'http_request_duration_seconds_bucket{le="0.1"} 5\n'
            'http_request_duration_seconds_bucket{le="+Inf"} NaN\n')
    with pytest.raises(MetricsScrapeError, match=r'le="\+Inf".*not a finite number'):
        parse(text)


def test_nan_in_samples_this_module_does_not_read_is_fine() -> None:
    text = (HEAD + 'http_requests_total{status="200"} 10\n'
            "http_request_duration_seconds_sum NaN\n# TYPE up gauge\nup NaN\n")
    assert parse(text, at=1.0).requests == 10


def test_a_missing_counter_family_is_an_error_naming_it() -> None:
    text = ("# TYPE http_request_duration_seconds histogram\n"
            'http_request_duration_seconds_bucket{le="+Inf"} 4\n'
            "# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight 3\n")
    with pytest.raises(MetricsScrapeError, match="no http_requests_total counter"):
        parse(text)


def test_buckets_without_inf_give_no_p95() -> None:
    # Prometheus' histogram_quantile answers NaN: how many were slower is unknown.
    assert histogram_quantile(0.95, [(0.1, 50), (0.5, 100)]) is None
    before = exposition({("/a", "200"): 0}, {"/a": {0.1: 0, 0.5: 0}})
    after = exposition({("/a", "200"): 100}, {"/a": {0.1: 50, 0.5: 100}})
    got = between(before, after)
    assert got.requests == 100 and got.p95_latency_ms is None


def test_an_inf_bucket_alone_gives_no_p95_rather_than_zero() -> None:
    assert histogram_quantile(0.95, [(INF, 100)]) is None
    before = exposition({("/a", "200"): 0}, {"/a": {INF: 0}})
    after = exposition({("/a", "200"): 100}, {"/a": {INF: 100}})
    assert between(before, after).p95_latency_ms is None
