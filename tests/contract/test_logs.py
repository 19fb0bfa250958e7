"""integrations.logs: the real asyncio Logging client against the Google emulator.

All traffic stays on 127.0.0.1; the emulator parses the filter the bot sends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.cloud.logging_v2 import types as logging_types

from integrations.cloud_run import RetryPolicy
from integrations.emulators.google import GoogleEmulator, methods
from integrations.emulators.world import UTC, EmuLogEntry, default_world
from integrations.gcp import GoogleClients
from integrations.google_retry import GoogleCallError
from integrations.logs import (
    CloudLogs,
    ErrorLogSummary,
    GoogleCloudLogs,
    entry_message,
    error_filter,
    normalise,
    summarise,
)

API = "medicalcor-api"
WEB = "medicalcor-web"
T0 = dt.datetime(2024, 12, 7, 10, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, total_seconds=5, initial_wait=0.01, max_wait=0.02,
                   call_timeout=5)


def log(minutes: float, message: str, severity: str = "ERROR", service: str = API,
        revision: str = "medicalcor-api-00015-abc") -> EmuLogEntry:
    return EmuLogEntry(T0 + dt.timedelta(minutes=minutes), severity, message, service, revision)


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[GoogleEmulator]:
    """Overrides conftest's: the default world with these logs (conftest's `clients` use it)."""
    emu = GoogleEmulator(default_world(), operation_delay=0.0)
    emu.world.logs[:] = [
        log(-5, "before the window: timeout after 9ms"),
        log(1, "request served", severity="INFO"),
        log(1.5, "slow request", severity="WARNING"),
        log(2, "db timeout after 1200ms"),
        log(3, "db timeout after 87ms"),
        log(4, "worker crashed", severity="CRITICAL"),
        log(5, "web error", service=WEB, revision="medicalcor-web-00014-abc"),
        log(6, "db timeout after 3ms"),
        log(7, "trace 4bf92f3577b34da6a3ce929d0e0e4736 failed", severity="ALERT"),
        log(8, "trace 00f067aa0ba902b7c3ce929d0e0e4736 failed"),
        log(20, "after the window"),
    ]
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
def logs(clients: GoogleClients) -> GoogleCloudLogs:
    return GoogleCloudLogs(clients.logging, "medicalcor-prod", FAST)


def last_request(emulator: GoogleEmulator) -> logging_types.ListLogEntriesRequest:
    request: logging_types.ListLogEntriesRequest = emulator.calls_to(
        methods.LIST_LOG_ENTRIES)[-1].request
    return request


async def test_counts_and_samples_in_the_window(
        logs: GoogleCloudLogs, emulator: GoogleEmulator) -> None:
    _: CloudLogs = logs  # satisfies the protocol
    start, end = T0, T0 + dt.timedelta(minutes=10)
    got = await logs.error_summary(API, start, end)
    # ERROR, CRITICAL and ALERT of medicalcor-api inside [start, end); not INFO/WARNING,
    # not the web service, not before or after.
    assert got == ErrorLogSummary(
        count=6, capped=False,
        samples=("db timeout after 3ms", "trace 00f067aa0ba902b7c3ce929d0e0e4736 failed",
                 "worker crashed"),
        sample_counts=(3, 2, 1),
    )
    request = last_request(emulator)
    assert request.filter == error_filter(API, start, end)
    assert list(request.resource_names) == ["projects/medicalcor-prod"]
    assert request.order_by == "timestamp desc" and request.page_size == 1000


async def test_open_ended_window_and_other_service(
        logs: GoogleCloudLogs, emulator: GoogleEmulator) -> None:
    got = await logs.error_summary(API, T0 + dt.timedelta(minutes=7), samples=5)
    assert (got.count, got.samples, got.sample_counts) == (3, (
        "trace 00f067aa0ba902b7c3ce929d0e0e4736 failed", "after the window"), (2, 1))
    assert last_request(emulator).filter.endswith('timestamp>="2024-12-07T10:07:00Z"')
    web = await logs.error_summary(WEB, T0)
    assert (web.count, web.samples) == (1, ("web error",))
    none = await logs.error_summary("medicalcor-none", T0)
    assert none == ErrorLogSummary(0, False, (), ())


async def test_cap_is_honoured(logs: GoogleCloudLogs, emulator: GoogleEmulator) -> None:
    got = await logs.error_summary(API, T0, samples=1, cap=4)
    # newest first: after the window, trace .. failed, trace .. failed (ALERT), db timeout 3ms
    assert (got.count, got.capped) == (4, True)
    assert got.samples == ("trace 00f067aa0ba902b7c3ce929d0e0e4736 failed",)
    exact = await logs.error_summary(API, T0, cap=7)
    assert (exact.count, exact.capped) == (7, False)
    with pytest.raises(ValueError, match="cap"):
        await logs.error_summary(API, T0, cap=0)


async def test_pages_until_the_cap(logs: GoogleCloudLogs, emulator: GoogleEmulator) -> None:
    emulator.world.logs[:] = [log(i / 1000, f"boom {i}") for i in range(2500)]
    got = await logs.error_summary(API, T0, cap=2200)
    assert (got.count, got.capped, got.sample_counts) == (2200, True, (2200,))
    calls = emulator.calls_to(methods.LIST_LOG_ENTRIES)
    assert [c.request.page_token for c in calls] == ["", "o:1000", "o:2000"]
    everything = await logs.error_summary(API, T0, cap=5000)
    assert (everything.count, everything.capped) == (2500, False)


async def test_transient_fault_is_retried(
        logs: GoogleCloudLogs, emulator: GoogleEmulator) -> None:
    emulator.faults.inject(methods.LIST_LOG_ENTRIES, grpc.StatusCode.UNAVAILABLE, count=2)
    got = await logs.error_summary(API, T0, T0 + dt.timedelta(minutes=10))
    assert got.count == 6
    assert len(emulator.calls_to(methods.LIST_LOG_ENTRIES)) == 3


async def test_persistent_and_permanent_faults(
        logs: GoogleCloudLogs, emulator: GoogleEmulator, clients: GoogleClients) -> None:
    emulator.faults.inject(methods.LIST_LOG_ENTRIES, grpc.StatusCode.UNAVAILABLE, count=-1)
    with pytest.raises(GoogleCallError, match="unavailable") as info:
        await logs.error_summary(API, T0)
    assert info.value.transient
    assert len(emulator.calls_to(methods.LIST_LOG_ENTRIES)) == FAST.attempts
    emulator.faults.clear()

    emulator.faults.inject(methods.LIST_LOG_ENTRIES, grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(GoogleCallError, match="permission denied") as info:
        await logs.error_summary(API, T0)
    assert not info.value.transient

    elsewhere = GoogleCloudLogs(clients.logging, "elsewhere", FAST)
    with pytest.raises(GoogleCallError, match="not found") as info:
        await elsewhere.error_summary(API, T0)
    assert not info.value.transient


async def test_quoted_service_names_reach_the_emulator_intact(
        logs: GoogleCloudLogs, emulator: GoogleEmulator) -> None:
    odd = 'we"ird\\svc'
    emulator.world.logs.append(log(1, "odd error", service=odd))
    got = await logs.error_summary(odd, T0)
    assert (got.count, got.samples) == (1, ("odd error",))


# --- pure parts -----------------------------------------------------------------------

def test_error_filter_exact_text() -> None:
    start = dt.datetime(2024, 12, 7, 12, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert error_filter(API, start, None) == (
        'resource.type="cloud_run_revision" AND resource.labels.service_name="medicalcor-api"'
        ' AND severity>=ERROR AND timestamp>="2024-12-07T10:00:05Z"')
    end = dt.datetime(2024, 12, 7, 10, 5, 0, 250000, tzinfo=UTC)
    assert error_filter('a"b\\c', T0, end) == (
        'resource.type="cloud_run_revision" AND resource.labels.service_name="a\\"b\\\\c"'
        ' AND severity>=ERROR AND timestamp>="2024-12-07T10:00:00Z"'
        ' AND timestamp<"2024-12-07T10:05:00.250000Z"')
    with pytest.raises(ValueError, match="time zone"):
        error_filter(API, dt.datetime(2024, 12, 7), None)


def test_normalise_groups_variants() -> None:
    assert normalise("timeout after 123ms") == normalise("timeout after 9ms")
    assert normalise("req 550e8400-e29b-41d4-a716-446655440000 at 0x7f3a failed") == (
        "req <id> at <hex> failed")
    assert normalise("trace deadbeef12 failed") == "trace <id> failed"
    assert normalise("database unavailable") == "database unavailable"  # words stay


def test_summarise_orders_by_frequency_then_recency() -> None:
    got = summarise(["b 1", "a 1", "a 2", "c", "b 2", "a 3"], samples=2)
    assert got == ErrorLogSummary(6, False, ("a 1", "b 1"), (3, 2))
    assert summarise([], samples=3) == ErrorLogSummary(0, False, (), ())


def test_entry_message_from_text_or_json() -> None:
    assert entry_message(logging_types.LogEntry(text_payload="  two\n lines ")) == "two lines"
    assert entry_message(logging_types.LogEntry(
        json_payload={"message": "db down", "severity": "ERROR"})) == "db down"
    assert entry_message(logging_types.LogEntry(json_payload={"code": 7})) == '{"code": 7.0}'
    assert entry_message(logging_types.LogEntry()) == "(empty message)"
    assert len(entry_message(logging_types.LogEntry(text_payload="x" * 1000))) == 300
