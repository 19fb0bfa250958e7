"""Traffic tags, as a gradual rollout uses them: the real GoogleCloudRun client against
the Google emulator sets a split with the target tagged, reads back the tag's own URL,
and the target app answers that URL as the tagged revision; tags are removed with the
next split; bad and duplicate tags are refused as Cloud Run refuses them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from integrations.cloud_run import GoogleCloudRun, RetryPolicy
from integrations.emulators.google import GoogleEmulator
from integrations.emulators.target_app import TargetApp
from integrations.gcp import GoogleClients
from integrations.google_retry import GoogleCallError
from tests.contract.conftest import FakeClock

API, REGION, TAG = "medicalcor-api", "europe-west3", "rollbot-target"
SERVING, OLD = "medicalcor-api-00015-abc", "medicalcor-api-00014-def"
FAST = RetryPolicy(attempts=3, total_seconds=5, initial_wait=0.01, max_wait=0.02,
                   call_timeout=3, operation_timeout=3)


@pytest_asyncio.fixture
async def target(emulator: GoogleEmulator) -> AsyncIterator[TargetApp]:
    app = TargetApp(emulator.world, clock=FakeClock(), seed=3)
    await app.start()
    emulator.world.tag_url_base = f"{app.url.rstrip('/')}/_tags"  # as the launcher does
    yield app
    await app.stop()


@pytest.fixture
def cloud_run(clients: GoogleClients, emulator: GoogleEmulator) -> GoogleCloudRun:
    return GoogleCloudRun(clients.services, clients.revisions, emulator.world.project, FAST)


async def _split(cloud_run: GoogleCloudRun, traffic: dict[str, int],
                 tags: dict[str, str] | None) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    await cloud_run.wait_operation(
        await cloud_run.update_service(snapshot, traffic=traffic, tags=tags))


async def test_the_tagged_target_has_its_own_url_answered_by_that_revision(
        cloud_run: GoogleCloudRun, target: TargetApp) -> None:
    await _split(cloud_run, {OLD: 50, SERVING: 50}, {OLD: TAG})
    state = await cloud_run.get_service(API, REGION)
    assert state.serving() == {OLD: 50, SERVING: 50}
    url = state.tag_uri(TAG)
    assert url == f"{target.url.rstrip('/')}/_tags/{TAG}---{API}"
    assert state.tag_uri("other") is None
    async with aiohttp.ClientSession() as http:
        for _ in range(5):  # every time, not by the split's chance
            async with http.get(f"{url}/{API}/health") as response:
                assert response.status == 200
                assert response.headers["X-Serving-Revision"] == OLD
        async with http.get(f"{url}/{API}/nope") as response:
            assert response.status == 404

    await _split(cloud_run, {OLD: 100}, None)  # the next split without tags drops it
    state = await cloud_run.get_service(API, REGION)
    assert state.tag_uri(TAG) is None and state.serving() == {OLD: 100}
    async with aiohttp.ClientSession() as http, http.get(f"{url}/{API}/health") as response:
        assert response.status == 404


async def test_the_longest_tag_the_service_name_leaves_room_for(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    await _split(cloud_run, {OLD: 50, SERVING: 50}, {OLD: "a" * (46 - len(API))})
    assert (await cloud_run.get_service(API, REGION)).tag_uri("a" * 32) is not None


async def test_a_tag_alone_is_a_zero_percent_target(cloud_run: GoogleCloudRun,
                                                    emulator: GoogleEmulator) -> None:
    await _split(cloud_run, {SERVING: 100}, {OLD: TAG})
    state = await cloud_run.get_service(API, REGION)
    assert state.serving() == {SERVING: 100}  # 0% targets serve nothing
    assert state.tag_uri(TAG) is not None
    assert [(t.revision, t.percent, t.tag) for t in state.traffic] == [
        (SERVING, 100, ""), (OLD, 0, TAG)]


@pytest.mark.parametrize("tags, problem", [
    ({"medicalcor-api-00014-def": "Bad_Tag"}, "invalid traffic tag"),
    ({"medicalcor-api-00014-def": "9starts-with-digit"}, "invalid traffic tag"),
    ({"medicalcor-api-00014-def": "a" * 33}, "at most 32 characters"),  # + medicalcor-api
    ({"medicalcor-api-00014-def": "same", "medicalcor-api-00015-abc": "same"},
     "one revision only"),
])
async def test_bad_and_duplicate_tags_are_refused_before_sending(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator, tags: dict[str, str],
        problem: str) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    with pytest.raises(GoogleCallError, match=problem) as refused:
        await cloud_run.update_service(snapshot, traffic={OLD: 50, SERVING: 50}, tags=tags)
    assert refused.value.kind == "invalid"
    assert emulator.world.serving(API) == {SERVING: 100}


async def test_the_emulator_refuses_duplicate_tags_as_cloud_run_does(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    from google.api_core import exceptions
    from google.cloud import run_v2

    service = await clients.services.get_service(
        name=f"projects/{emulator.world.project}/locations/{REGION}/services/{API}")
    del service.traffic[:]
    kind = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    service.traffic.extend([
        run_v2.TrafficTarget(type_=kind, revision=OLD, percent=50, tag="dup"),
        run_v2.TrafficTarget(type_=kind, revision=SERVING, percent=50, tag="dup")])
    with pytest.raises(exceptions.InvalidArgument, match="unique"):
        await clients.services.update_service(request=run_v2.UpdateServiceRequest(
            service=service))


async def test_the_emulator_refuses_a_tag_too_long_with_the_service_name(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    from google.api_core import exceptions
    from google.cloud import run_v2

    service = await clients.services.get_service(
        name=f"projects/{emulator.world.project}/locations/{REGION}/services/{API}")
    kind = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    del service.traffic[:]
    service.traffic.append(run_v2.TrafficTarget(type_=kind, revision=OLD, percent=100,
                                                tag="a" * 33))
    with pytest.raises(exceptions.InvalidArgument, match="cannot exceed 46"):
        await clients.services.update_service(request=run_v2.UpdateServiceRequest(
            service=service))
