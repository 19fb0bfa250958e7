"""Contract tests: the real asyncio GAPIC clients against the Google emulator.

Every call goes through integrations.gcp.make_google_clients, so these also
prove the factory's emulator wiring. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import grpc
import pytest
import pytest_asyncio
from google.api_core import exceptions as gexc
from google.api_core import retry_async
from google.cloud import run_v2
from google.cloud import secretmanager_v1 as sm
from google.logging.type import log_severity_pb2
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2

from integrations.emulators.google import GoogleEmulator, methods, secret_payload
from integrations.emulators.google.common import crc32c
from integrations.emulators.world import UTC, EmuLogEntry
from integrations.gcp import GoogleClients

API = "medicalcor-api"
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
FAST_RETRY = retry_async.AsyncRetry(
    initial=0.01, maximum=0.02, predicate=retry_async.if_exception_type(gexc.ServiceUnavailable),
    timeout=2.0,
)


def rev_target(revision: str, percent: int) -> run_v2.TrafficTarget:
    return run_v2.TrafficTarget(type_=REVISION, revision=revision, percent=percent)


async def set_traffic(clients: GoogleClients, emulator: GoogleEmulator,
                      *targets: run_v2.TrafficTarget) -> run_v2.Service:
    """What the bot does: get the service, replace traffic, update, wait for the operation."""
    svc = await clients.services.get_service(name=emulator.world.service_name(API))
    svc.traffic = list(targets)
    op = await clients.services.update_service(service=svc)
    return await op.result(timeout=5)


# --- Cloud Run: reads ---------------------------------------------------------
async def test_get_service_fields(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    world = emulator.world
    svc = await clients.services.get_service(name=world.service_name(API))
    assert svc.name == f"projects/medicalcor-prod/locations/europe-west3/services/{API}"
    assert svc.uri == world.services[API].uri
    assert [(t.type_, t.revision, t.percent) for t in svc.traffic] == [
        (REVISION, "medicalcor-api-00015-abc", 100)]
    assert svc.traffic_statuses[0].revision == "medicalcor-api-00015-abc"
    assert svc.latest_ready_revision == world.revision_name(API, "medicalcor-api-00015-abc")
    assert svc.latest_created_revision == svc.latest_ready_revision
    assert svc.template.containers[0].image.endswith(f"{API}:v1.3.0")
    assert svc.terminal_condition.type_ == "Ready"
    assert svc.terminal_condition.state == SUCCEEDED
    assert any(c.type_ == "Ready" and c.state == SUCCEEDED for c in svc.conditions)
    assert svc.generation == 1 and svc.etag and not svc.reconciling
    assert svc.create_time == dt.datetime(2024, 12, 5, 12, 0, tzinfo=UTC)


async def test_list_services(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    pager = await clients.services.list_services(parent=emulator.world.location_name)
    names = [s.name.rsplit("/", 1)[-1] async for s in pager]
    assert names == ["medicalcor-api", "medicalcor-web"]
    with pytest.raises(gexc.NotFound, match="us-central1"):
        await clients.services.list_services(
            parent="projects/medicalcor-prod/locations/us-central1")


async def test_list_revisions_newest_first_paged(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    pager = await clients.revisions.list_revisions(
        request={"parent": emulator.world.service_name(API), "page_size": 2})
    names = [r.name.rsplit("/", 1)[-1] async for r in pager]
    assert names == ["medicalcor-api-00015-abc", "medicalcor-api-00014-def",
                     "medicalcor-api-00013-ghi"]
    calls = emulator.calls_to(methods.LIST_REVISIONS)
    assert len(calls) == 2 and calls[1].request.page_token


async def test_get_revision_fields(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    world = emulator.world
    emu_rev = world.services[API].revisions["medicalcor-api-00013-ghi"]
    rev = await clients.revisions.get_revision(
        name=world.revision_name(API, "medicalcor-api-00013-ghi"))
    assert rev.service == API
    assert rev.containers[0].image == emu_rev.image
    assert rev.create_time == emu_rev.create_time
    assert rev.annotations["serving.knative.dev/creator"] == emu_rev.creator == "ana@medicalcor.com"
    assert [(c.type_, c.state) for c in rev.conditions] == [("Ready", SUCCEEDED)]
    [secret_env] = [e for e in rev.containers[0].env if e.name == "API_SECRET_KEY"]
    ref = secret_env.value_source.secret_key_ref
    assert (ref.secret, ref.version) == ("API_SECRET_KEY", "1")


async def test_not_ready_revision_reports_failed_condition(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    emulator.world.services[API].revisions["medicalcor-api-00014-def"].ready = False
    rev = await clients.revisions.get_revision(
        name=emulator.world.revision_name(API, "medicalcor-api-00014-def"))
    assert rev.conditions[0].state == run_v2.Condition.State.CONDITION_FAILED
    with pytest.raises(gexc.FailedPrecondition, match="not ready"):
        await set_traffic(clients, emulator, rev_target("medicalcor-api-00014-def", 100))


@pytest.mark.parametrize("name", [
    "projects/medicalcor-prod/locations/europe-west3/services/nope",
    "projects/other-project/locations/europe-west3/services/medicalcor-api",
    "projects/medicalcor-prod/locations/us-east1/services/medicalcor-api",
])
async def test_unknown_service_not_found(clients: GoogleClients, name: str) -> None:
    with pytest.raises(gexc.NotFound):
        await clients.services.get_service(name=name, retry=None)


async def test_unknown_revision_not_found(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    with pytest.raises(gexc.NotFound, match="medicalcor-api-00099-zzz"):
        await clients.revisions.get_revision(
            name=emulator.world.revision_name(API, "medicalcor-api-00099-zzz"))


# --- Cloud Run: updates and operations -----------------------------------------
async def test_rollback_applies_when_operation_completes(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    emulator.operation_delay = 0.05
    world = emulator.world
    svc = await clients.services.get_service(name=world.service_name(API))
    svc.traffic = [rev_target("medicalcor-api-00014-def", 100)]
    op = await clients.services.update_service(service=svc)
    # Not applied yet: the bot has to wait for the operation.
    assert world.serving(API) == {"medicalcor-api-00015-abc": 100}
    assert op.metadata is not None and op.metadata.reconciling
    result = await op.result(timeout=5)
    assert [(t.revision, t.percent) for t in result.traffic] == [("medicalcor-api-00014-def", 100)]
    assert result.generation == 2 and not result.reconciling
    assert world.serving(API) == {"medicalcor-api-00014-def": 100}
    again = await clients.services.get_service(name=world.service_name(API))
    assert again.traffic_statuses[0].revision == "medicalcor-api-00014-def"
    assert again.etag != svc.etag
    assert emulator.calls_to(methods.GET_OPERATION)  # the client polled


async def test_split_50_50(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    result = await set_traffic(clients, emulator, rev_target("medicalcor-api-00014-def", 50),
                               rev_target("medicalcor-api-00015-abc", 50))
    assert sorted((t.revision, t.percent) for t in result.traffic_statuses) == [
        ("medicalcor-api-00014-def", 50), ("medicalcor-api-00015-abc", 50)]
    assert emulator.world.serving(API) == {
        "medicalcor-api-00014-def": 50, "medicalcor-api-00015-abc": 50}


@pytest.mark.parametrize(("targets", "message"), [
    ([rev_target("medicalcor-api-00014-def", 90)], "add up to 100"),
    ([rev_target("medicalcor-api-00014-def", 110), rev_target("medicalcor-api-00015-abc", -10)],
     "between 0 and 100"),
    ([rev_target("medicalcor-api-00099-zzz", 100)], "does not exist"),
    ([rev_target("projects/medicalcor-prod/locations/europe-west3/services/medicalcor-api/"
                 "revisions/medicalcor-api-00014-def", 100)], "short revision name"),
    ([run_v2.TrafficTarget(revision="medicalcor-api-00014-def", percent=100)], "type must be"),
])
async def test_invalid_traffic_rejected(clients: GoogleClients, emulator: GoogleEmulator,
                                        targets: list[run_v2.TrafficTarget], message: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match=message):
        await set_traffic(clients, emulator, *targets)
    assert emulator.world.serving(API) == {"medicalcor-api-00015-abc": 100}


async def test_update_without_template_needs_update_mask(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    bare = run_v2.Service(name=emulator.world.service_name(API),
                          traffic=[rev_target("medicalcor-api-00014-def", 100)])
    with pytest.raises(gexc.InvalidArgument, match="template"):
        await clients.services.update_service(service=bare)
    op = await clients.services.update_service(
        request={"service": bare, "update_mask": {"paths": ["traffic"]}})
    await op.result(timeout=5)
    assert emulator.world.serving(API) == {"medicalcor-api-00014-def": 100}


async def test_stale_etag_aborted(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    stale = await clients.services.get_service(name=emulator.world.service_name(API))
    await set_traffic(clients, emulator, rev_target("medicalcor-api-00014-def", 100))
    stale.traffic = [rev_target("medicalcor-api-00013-ghi", 100)]
    with pytest.raises(gexc.Aborted, match="etag"):
        await clients.services.update_service(service=stale)


async def test_image_redeploy_creates_revision(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    world = emulator.world
    svc = await clients.services.get_service(name=world.service_name(API))
    new_image = svc.template.containers[0].image.replace("v1.3.0", "v1.3.1")
    svc.template.containers[0].image = new_image
    svc.traffic = []  # empty: 100% to the latest ready revision
    op = await clients.services.update_service(service=svc)
    result = await op.result(timeout=5)
    new_name = result.latest_created_revision.rsplit("/", 1)[-1]
    assert re.fullmatch(r"medicalcor-api-00016-[a-z]{3}", new_name)
    assert result.latest_ready_revision == result.latest_created_revision
    assert [(t.type_, t.percent) for t in result.traffic] == [(LATEST, 100)]
    assert world.serving(API) == {new_name: 100}
    rev = await clients.revisions.get_revision(name=result.latest_created_revision)
    assert rev.containers[0].image == new_image
    env = [(e.name, e.value, e.value_source.secret_key_ref.version)
           for e in rev.containers[0].env]
    # carried over from the template, in order
    assert env == [("LOG_LEVEL", "debug", ""), ("FEATURE_X", "true", ""),
                   ("API_SECRET_KEY", "", "2"), ("WEBHOOK_TOKEN", "whk_live_00015-abc_s3cr3t", "")]


async def test_service_template_is_the_newest_revisions_config(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    world = emulator.world
    svc = await clients.services.get_service(name=world.service_name(API))
    rev = await clients.revisions.get_revision(
        name=world.revision_name(API, "medicalcor-api-00015-abc"))
    template, revision = run_v2.Service.pb(svc).template, run_v2.Revision.pb(rev)
    for field in ("containers", "volumes", "scaling", "timeout", "service_account"):
        assert getattr(template, field) == getattr(revision, field), field
    assert template.revision == ""
    assert dict(template.labels) == {"team": "platform"}
    assert dict(revision.labels)["team"] == "platform"


async def test_template_fields_the_emulator_does_not_model_are_refused(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    svc = await clients.services.get_service(name=emulator.world.service_name(API))
    svc.template.containers[0].args = ["--verbose"]
    with pytest.raises(gexc.InvalidArgument, match="does not model"):
        await clients.services.update_service(service=svc)
    assert len(emulator.world.services[API].revisions) == 3


async def test_renaming_the_template_makes_a_revision(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    world = emulator.world
    svc = await clients.services.get_service(name=world.service_name(API))
    svc.template.revision = "medicalcor-api-00016-new"
    await (await clients.services.update_service(service=svc)).result(timeout=5)
    assert "medicalcor-api-00016-new" in world.services[API].revisions
    svc = await clients.services.get_service(name=world.service_name(API))
    assert svc.template.revision == "medicalcor-api-00016-new"
    await (await clients.services.update_service(service=svc)).result(timeout=5)
    assert len(world.services[API].revisions) == 4  # same name, same template: no change


async def test_wait_operation(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    emulator.operation_delay = 0.1
    svc = await clients.services.get_service(name=emulator.world.service_name(API))
    svc.traffic = [rev_target("medicalcor-api-00013-ghi", 100)]
    op = await clients.services.update_service(service=svc)
    raw = await clients.services.wait_operation(operations_pb2.WaitOperationRequest(
        name=op.operation.name, timeout=duration_pb2.Duration(seconds=5)))
    # google-cloud-run 0.16's wait_operation stub has response_deserializer=None, so
    # it hands back the serialized bytes; decode them ourselves.
    done = raw if isinstance(raw, operations_pb2.Operation) else (
        operations_pb2.Operation.FromString(raw))
    assert done.done
    assert emulator.world.serving(API) == {"medicalcor-api-00013-ghi": 100}


async def test_operations_never_finish(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    emulator.operation_delay = 0.01
    emulator.operations_never_finish = True
    svc = await clients.services.get_service(name=emulator.world.service_name(API))
    svc.traffic = [rev_target("medicalcor-api-00014-def", 100)]
    op = await clients.services.update_service(service=svc)
    with pytest.raises((asyncio.TimeoutError, gexc.RetryError)):
        await op.result(timeout=0.5)
    assert not await op.done()
    assert emulator.world.serving(API) == {"medicalcor-api-00015-abc": 100}


# --- faults ---------------------------------------------------------------------
async def test_unavailable_twice_then_success(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    name = emulator.world.revision_name(API, "medicalcor-api-00014-def")
    emulator.faults.inject(methods.GET_REVISION, grpc.StatusCode.UNAVAILABLE, count=2)
    for _ in range(2):  # GetRevision has no default retry: the caller sees each failure
        with pytest.raises(gexc.ServiceUnavailable, match="injected fault"):
            await clients.revisions.get_revision(name=name)
    rev = await clients.revisions.get_revision(name=name)
    assert rev.name == name
    assert len(emulator.calls_to(methods.GET_REVISION)) == 3


async def test_get_service_retries_unavailable_by_default(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    name = emulator.world.service_name(API)
    emulator.faults.inject(methods.GET_SERVICE, grpc.StatusCode.UNAVAILABLE, count=2)
    svc = await clients.services.get_service(name=name, retry=FAST_RETRY)
    assert svc.name == name and len(emulator.calls_to(methods.GET_SERVICE)) == 3
    emulator.faults.inject(methods.GET_SERVICE, grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(gexc.ServiceUnavailable):
        await clients.services.get_service(name=name, retry=None)


async def test_latency_faults(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    name = emulator.world.revision_name(API, "medicalcor-api-00014-def")
    emulator.faults.delay(methods.GET_REVISION, 0.2, count=1)
    start = time.monotonic()
    await clients.revisions.get_revision(name=name)
    assert time.monotonic() - start >= 0.2
    emulator.faults.inject(methods.GET_REVISION, grpc.StatusCode.INTERNAL, latency=0.1)
    emulator.faults.latency_all = 0.05
    start = time.monotonic()
    with pytest.raises(gexc.InternalServerError):
        await clients.revisions.get_revision(name=name)
    assert time.monotonic() - start >= 0.15
    emulator.faults.delay(methods.GET_REVISION, 1.0)
    with pytest.raises(gexc.DeadlineExceeded):
        await clients.revisions.get_revision(name=name, timeout=0.1)
    emulator.faults.clear()
    start = time.monotonic()
    await clients.revisions.get_revision(name=name)
    assert time.monotonic() - start < 0.2


async def test_applied_waits_are_recorded(clients: GoogleClients, emulator: GoogleEmulator,
                                          ) -> None:
    """A benchmark compares its run with the waits the emulator really applied: each
    call's injected wait and each operation's start and end, as they happened."""
    emulator.operation_delay = 0.05
    emulator.faults.latency_all = 0.03
    world = emulator.world
    before = time.monotonic()
    svc = await clients.services.get_service(name=world.service_name(API))
    svc.traffic = [rev_target("medicalcor-api-00014-def", 100)]
    op = await clients.services.update_service(service=svc)
    await op.result(timeout=5)
    get = emulator.calls_to(methods.GET_SERVICE)[-1]
    update = emulator.calls_to(methods.UPDATE_SERVICE)[-1]
    for call in (get, update):
        assert call.waited is not None
        began, ended = call.waited
        assert began == call.time >= before and ended - began >= 0.03
        assert call.answered is not None and call.answered >= ended
    (started, finished), = emulator.operation_timings().values()
    assert update.waited is not None and started >= update.waited[1]
    assert finished is not None and finished - started >= 0.05
    emulator.faults.clear()
    await clients.services.get_service(name=world.service_name(API))
    assert emulator.calls_to(methods.GET_SERVICE)[-1].waited is None  # nothing injected


# --- Secret Manager ---------------------------------------------------------------
async def test_secrets(clients: GoogleClients, emulator: GoogleEmulator) -> None:
    world = emulator.world
    secret = world.secret_name("API_SECRET_KEY")
    pager = await clients.secrets.list_secrets(parent="projects/medicalcor-prod")
    assert [s.name async for s in pager] == [secret]
    versions = await clients.secrets.list_secret_versions(parent=secret)
    assert [(v.name.rsplit("/", 1)[-1], v.state) async for v in versions] == [
        ("2", sm.SecretVersion.State.ENABLED), ("1", sm.SecretVersion.State.DISABLED)]

    latest = await clients.secrets.access_secret_version(name=f"{secret}/versions/latest")
    assert latest.name == f"{secret}/versions/2"
    assert latest.payload.data == secret_payload("API_SECRET_KEY", "2")
    assert latest.payload.data == b"emulated-secret-API_SECRET_KEY-2"
    assert latest.payload.data_crc32c == crc32c(latest.payload.data)

    with pytest.raises(gexc.FailedPrecondition, match="DISABLED"):
        await clients.secrets.access_secret_version(name=f"{secret}/versions/1")
    enabled = await clients.secrets.enable_secret_version(name=f"{secret}/versions/1")
    assert enabled.state == sm.SecretVersion.State.ENABLED
    assert world.secrets["API_SECRET_KEY"].versions["1"].state == "ENABLED"
    await clients.secrets.access_secret_version(name=f"{secret}/versions/1")

    disabled = await clients.secrets.disable_secret_version(name=f"{secret}/versions/2")
    assert disabled.state == sm.SecretVersion.State.DISABLED
    assert world.secrets["API_SECRET_KEY"].versions["2"].state == "DISABLED"
    got = await clients.secrets.get_secret_version(name=f"{secret}/versions/latest")
    assert got.name.endswith("/versions/2") and got.state == sm.SecretVersion.State.DISABLED
    with pytest.raises(gexc.NotFound):
        await clients.secrets.get_secret(name=world.secret_name("NOPE"))


# --- Logging ------------------------------------------------------------------------
T0 = dt.datetime(2024, 12, 7, 10, 0, tzinfo=UTC)


def _log(minutes: int, severity: str, message: str, service: str = API,
         revision: str = "medicalcor-api-00015-abc") -> EmuLogEntry:
    return EmuLogEntry(T0 + dt.timedelta(minutes=minutes), severity, message, service, revision)


@pytest_asyncio.fixture
async def logged(emulator: GoogleEmulator) -> GoogleEmulator:
    emulator.world.logs[:] = [
        _log(-5, "ERROR", "before the window"),
        _log(1, "INFO", "request served"),
        _log(2, "ERROR", "db timeout"),
        _log(3, "CRITICAL", "worker crashed"),
        _log(4, "ERROR", "web error", service="medicalcor-web",
             revision="medicalcor-web-00014-abc"),
        _log(5, "WARNING", "slow request Timeout soon"),
        _log(6, "ERROR", "old revision error", revision="medicalcor-api-00014-def"),
    ]
    return emulator


async def _messages(clients: GoogleClients, log_filter: str, **kw: object) -> list[str]:
    pager = await clients.logging.list_log_entries(
        request={"resource_names": ["projects/medicalcor-prod"], "filter": log_filter, **kw})
    return [e.text_payload async for e in pager]


async def test_logging_filter(clients: GoogleClients, logged: GoogleEmulator) -> None:
    base = ('resource.type="cloud_run_revision" AND resource.labels.service_name="medicalcor-api"'
            ' AND severity>=ERROR AND timestamp>="2024-12-07T10:00:00Z"')
    assert await _messages(clients, base) == ["db timeout", "worker crashed",
                                              "old revision error"]
    assert await _messages(clients, base, order_by="timestamp desc") == [
        "old revision error", "worker crashed", "db timeout"]
    narrowed = f'{base} AND resource.labels.revision_name="medicalcor-api-00015-abc"'
    assert await _messages(clients, narrowed) == ["db timeout", "worker crashed"]
    assert await _messages(clients, 'textPayload:"timeout"') == [
        "db timeout", "slow request Timeout soon"]
    window = 'timestamp>"2024-12-07T12:01:00+02:00" timestamp<=2024-12-07T10:03:00.000000000Z'
    assert await _messages(clients, window) == ["db timeout", "worker crashed"]


async def test_logging_entry_fields_and_paging(
        clients: GoogleClients, logged: GoogleEmulator) -> None:
    pager = await clients.logging.list_log_entries(request={
        "resource_names": ["projects/medicalcor-prod"], "filter": "severity=CRITICAL"})
    [entry] = [e async for e in pager]
    assert entry.log_name == "projects/medicalcor-prod/logs/run.googleapis.com%2Fstderr"
    assert entry.resource.type == "cloud_run_revision"
    assert dict(entry.resource.labels) == {
        "service_name": API, "revision_name": "medicalcor-api-00015-abc",
        "configuration_name": API, "location": "europe-west3", "project_id": "medicalcor-prod"}
    assert entry.severity == log_severity_pb2.CRITICAL
    assert entry.timestamp == T0 + dt.timedelta(minutes=3)
    assert entry.insert_id
    assert len(await _messages(clients, "", page_size=3)) == 7
    assert len(logged.calls_to(methods.LIST_LOG_ENTRIES)) == 1 + 3


@pytest.mark.parametrize(("log_filter", "named"), [
    ('severity>=ERROR OR textPayload:"x"', "OR"),
    ('jsonPayload.message="x"', "jsonPayload.message"),
    ("severity>=LOUD", "LOUD"),
    ('textPayload>"x"', "textPayload"),
    ("timestamp>=yesterday", "yesterday"),
])
async def test_logging_invalid_filter(clients: GoogleClients, logged: GoogleEmulator,
                                      log_filter: str, named: str) -> None:
    with pytest.raises(gexc.InvalidArgument, match=re.escape(named)):
        await _messages(clients, log_filter)


async def test_logging_unknown_project(clients: GoogleClients, logged: GoogleEmulator) -> None:
    with pytest.raises(gexc.NotFound):
        await clients.logging.list_log_entries(resource_names=["projects/elsewhere"])


async def test_calls_are_recorded_in_order(
        clients: GoogleClients, emulator: GoogleEmulator) -> None:
    await set_traffic(clients, emulator, rev_target("medicalcor-api-00014-def", 100))
    assert [c.method for c in emulator.calls][:2] == [methods.GET_SERVICE, methods.UPDATE_SERVICE]
    update = emulator.calls_to(methods.UPDATE_SERVICE)[0].request
    assert isinstance(update, run_v2.UpdateServiceRequest)
    assert update.service.traffic[0].revision == "medicalcor-api-00014-def"
