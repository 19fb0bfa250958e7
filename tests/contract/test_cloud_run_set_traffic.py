"""GoogleCloudRun.set_traffic against the Google emulator: the read overlaps the
caller's `before_change`, the update waits for it, and retries re-read the service."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.cloud import run_v2

from integrations.cloud_run import CloudRunError, GoogleCloudRun, RetryPolicy
from integrations.emulators.google import GoogleEmulator, methods
from integrations.gcp import GoogleClients

API = "medicalcor-api"
TARGET = "medicalcor-api-00014-def"
FAST = RetryPolicy(attempts=3, total_seconds=5, initial_wait=0.01, max_wait=0.02,
                   call_timeout=3, operation_timeout=3)


def _cloud_run(clients: GoogleClients, emulator: GoogleEmulator) -> GoogleCloudRun:
    return GoogleCloudRun(clients.services, clients.revisions, emulator.world.project, FAST)


def _methods(emulator: GoogleEmulator) -> list[str]:
    return [c.method for c in emulator.calls]


async def test_read_overlaps_before_change_and_update_waits_for_it(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    emulator.faults.delay(methods.GET_SERVICE, 0.2, count=1)
    cloud_run = _cloud_run(clients, emulator)
    spans: dict[str, float] = {}

    async def before_change() -> None:
        spans["began"] = time.monotonic()
        await asyncio.sleep(0.3)  # longer than the read
        spans["ended"] = time.monotonic()

    started = time.monotonic()
    state = await cloud_run.set_traffic(API, emulator.world.region, {TARGET: 100},
                                        before_change=before_change)
    assert state.serving() == {TARGET: 100}
    read, update = emulator.calls_to(methods.GET_SERVICE)[0], emulator.calls_to(
        methods.UPDATE_SERVICE)[0]
    assert read.time < spans["began"] + 0.1  # the read did not wait for before_change
    assert update.time >= spans["ended"]  # the update did
    # Overlapped: about max(0.2, 0.3) before the update, not 0.2 + 0.3.
    assert update.time - started < 0.45


async def test_before_change_failing_changes_nothing(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    emulator.faults.delay(methods.GET_SERVICE, 0.2, count=1)  # still reading when it fails

    async def before_change() -> None:
        raise LookupError("not ours")

    with pytest.raises(LookupError, match="not ours"):
        await _cloud_run(clients, emulator).set_traffic(
            API, emulator.world.region, {TARGET: 100}, before_change=before_change)
    await asyncio.sleep(0.3)
    assert not emulator.calls_to(methods.UPDATE_SERVICE)
    assert emulator.world.serving(API) == {"medicalcor-api-00015-abc": 100}


async def test_read_error_waits_for_before_change(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    emulator.faults.inject(methods.GET_SERVICE, grpc.StatusCode.PERMISSION_DENIED)
    finished: list[bool] = []

    async def before_change() -> None:
        await asyncio.sleep(0.1)
        finished.append(True)

    with pytest.raises(CloudRunError) as raised:
        await _cloud_run(clients, emulator).set_traffic(
            API, emulator.world.region, {TARGET: 100}, before_change=before_change)
    assert raised.value.kind == "permission"
    assert finished == [True]  # not abandoned half-way (e.g. mid-transaction)
    assert not emulator.calls_to(methods.UPDATE_SERVICE)


async def test_transient_update_error_is_retried_with_a_fresh_read(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    emulator.faults.inject(methods.UPDATE_SERVICE, grpc.StatusCode.UNAVAILABLE)
    await _cloud_run(clients, emulator).set_traffic(API, emulator.world.region, {TARGET: 100})
    assert _methods(emulator)[:4] == [methods.GET_SERVICE, methods.UPDATE_SERVICE,
                                      methods.GET_SERVICE, methods.UPDATE_SERVICE]
    assert emulator.world.serving(API) == {TARGET: 100}


async def test_service_changed_during_before_change_is_read_again(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    """The early read can be older than the update by before_change's duration; if
    someone changed the service meanwhile (new etag), it is read again, once."""
    name = emulator.world.service_name(API)

    async def before_change() -> None:
        svc = await clients.services.get_service(name=name)
        svc.traffic = [run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision="medicalcor-api-00013-ghi", percent=100)]
        await (await clients.services.update_service(service=svc)).result(timeout=5)

    state = await _cloud_run(clients, emulator).set_traffic(
        API, emulator.world.region, {TARGET: 100}, before_change=before_change)
    assert state.serving() == {TARGET: 100}
    updates = emulator.calls_to(methods.UPDATE_SERVICE)
    assert len(updates) == 3  # before_change's, the stale one (ABORTED), the re-read one


async def test_a_read_started_ahead_is_the_one_the_change_uses(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    cloud_run = _cloud_run(clients, emulator)
    read = cloud_run.start_read(API, emulator.world.region)
    await asyncio.sleep(0.05)  # the caller's own work (loading its rollback)
    assert _methods(emulator) == [methods.GET_SERVICE]  # out before set_traffic

    state = await cloud_run.set_traffic(API, emulator.world.region, {TARGET: 100}, read=read)
    assert state.serving() == {TARGET: 100}
    # The read ahead was the change's read: one before the update, one after (read-back).
    assert _methods(emulator)[:2] == [methods.GET_SERVICE, methods.UPDATE_SERVICE]
    assert len(emulator.calls_to(methods.GET_SERVICE)) == 2


async def test_a_read_started_for_another_service_is_dropped(
    clients: GoogleClients, emulator: GoogleEmulator
) -> None:
    cloud_run = _cloud_run(clients, emulator)
    emulator.faults.delay(methods.GET_SERVICE, 0.5, count=1)  # still reading when dropped
    wrong = cloud_run.start_read("medicalcor-web", emulator.world.region)
    await asyncio.sleep(0.05)

    state = await cloud_run.set_traffic(API, emulator.world.region, {TARGET: 100}, read=wrong)
    assert state.serving() == {TARGET: 100}
    assert wrong.task.cancelled()
    updated = emulator.calls_to(methods.UPDATE_SERVICE)
    assert [c.request.service.name.rsplit("/", 1)[-1] for c in updated] == [API]
    assert emulator.world.serving("medicalcor-web") != {TARGET: 100}
