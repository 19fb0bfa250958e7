"""GoogleCloudRun's template reads and updates against the Google emulator: what a
service and its revisions run with, and UpdateService requests that change exactly
what was asked (image, env, secret versions, labels, traffic) and nothing else."""

from __future__ import annotations

import re

import pytest
from google.cloud import run_v2

from integrations.cloud_run import (
    EnvVar,
    GoogleCloudRun,
    RetryPolicy,
    SecretRef,
    SecretVolume,
    ServiceSnapshot,
    TemplateEdit,
)
from integrations.emulators.google import GoogleEmulator, methods
from integrations.gcp import GoogleClients
from integrations.google_retry import GoogleCallError

API = "medicalcor-api"
SERVING = "medicalcor-api-00015-abc"
OLD = "medicalcor-api-00014-def"
REGION = "europe-west3"
IMAGE = "europe-west3-docker.pkg.dev/medicalcor-prod/apps/medicalcor-api:{}"
LABEL = {"rollbot-change": "rb-42"}
FAST = RetryPolicy(attempts=3, total_seconds=5, initial_wait=0.01, max_wait=0.02,
                   call_timeout=3, operation_timeout=3)


@pytest.fixture
def cloud_run(clients: GoogleClients, emulator: GoogleEmulator) -> GoogleCloudRun:
    return GoogleCloudRun(clients.services, clients.revisions, emulator.world.project, FAST)


def _sent_template(emulator: GoogleEmulator) -> run_v2.RevisionTemplate:
    """The template of the last UpdateService request (a copy, raw protobuf)."""
    request = emulator.calls_to(methods.UPDATE_SERVICE)[-1].request
    sent = run_v2.RevisionTemplate.pb()()
    sent.CopyFrom(run_v2.UpdateServiceRequest.pb(request).service.template)
    return sent


def _read_template(snapshot: ServiceSnapshot) -> run_v2.RevisionTemplate:
    read = run_v2.RevisionTemplate.pb()()
    read.CopyFrom(run_v2.Service.pb(snapshot.raw).template)
    return read


async def _apply(cloud_run: GoogleCloudRun, operation: str) -> None:
    assert operation
    await cloud_run.wait_operation(operation)


async def test_read_service_returns_what_a_new_revision_would_run_with(
        cloud_run: GoogleCloudRun) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    assert snapshot.state.serving() == {SERVING: 100}
    assert snapshot.etag and snapshot.etag == snapshot.state.etag
    config = snapshot.template
    assert config.revision == ""  # the newest revision was named by Cloud Run
    assert config.image == IMAGE.format("v1.3.0")
    assert config.env == (EnvVar("LOG_LEVEL", "debug"), EnvVar("FEATURE_X", "true"),
                          EnvVar("API_SECRET_KEY", secret=SecretRef("API_SECRET_KEY", "2")),
                          EnvVar("WEBHOOK_TOKEN", "whk_live_00015-abc_s3cr3t"))
    assert config.env_value("FEATURE_X") == EnvVar("FEATURE_X", "true")
    assert config.env_value("NOPE") is None
    assert config.secret_volumes == (
        SecretVolume("api-secret", "/secrets/api", "API_SECRET_KEY", (("key", "2"),)),)
    assert config.secret_refs() == {"API_SECRET_KEY": {"2"}}
    assert (config.cpu, config.memory) == ("1", "1Gi")
    assert (config.min_instances, config.max_instances) == (0, 20)
    assert config.service_account == "medicalcor-api@medicalcor-prod.iam.gserviceaccount.com"
    assert config.timeout_seconds == 300.0
    assert config.labels == {"team": "platform"}
    assert config.annotations == {"run.googleapis.com/startup-cpu-boost": "true"}


async def test_get_revision_config_of_an_old_revision(cloud_run: GoogleCloudRun) -> None:
    config = await cloud_run.get_revision_config(API, REGION, "medicalcor-api-00013-ghi")
    assert config.revision == "medicalcor-api-00013-ghi"
    assert config.image == IMAGE.format("v1.2.1")
    assert config.env == (EnvVar("LOG_LEVEL", "info"),
                          EnvVar("API_SECRET_KEY", secret=SecretRef("API_SECRET_KEY", "1")),
                          EnvVar("WEBHOOK_TOKEN", "whk_live_00013-ghi_s3cr3t"))
    assert config.secret_refs() == {"API_SECRET_KEY": {"1"}}
    assert (config.memory, config.max_instances) == ("512Mi", 10)
    assert config.labels["team"] == "platform"  # beside Cloud Run's own labels
    with pytest.raises(GoogleCallError) as raised:
        await cloud_run.get_revision_config(API, REGION, "medicalcor-api-00099-zzz")
    assert raised.value.kind == "not_found"


async def test_image_edit_makes_a_named_revision_and_pins_traffic_to_it(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    name = "medicalcor-api-00016-rbk"
    operation = await cloud_run.update_service(
        snapshot, traffic={name: 100}, edit=TemplateEdit(image=IMAGE.format("v1.2.2")),
        revision_name=name, labels=LABEL)
    await _apply(cloud_run, operation)

    expected = _read_template(snapshot)  # all but image, revision and the label as read
    expected.containers[0].image = IMAGE.format("v1.2.2")
    expected.revision = name
    expected.labels.update(LABEL)
    assert _sent_template(emulator) == expected
    assert run_v2.Service.pb(snapshot.raw).template == _read_template(snapshot)  # untouched

    after = await cloud_run.read_service(API, REGION)
    assert after.state.serving() == {name: 100}
    assert after.template.revision == name and after.etag != snapshot.etag
    config = await cloud_run.get_revision_config(API, REGION, name)
    assert config.image == IMAGE.format("v1.2.2")
    assert config.env == snapshot.template.env
    assert config.labels["rollbot-change"] == "rb-42"
    new = emulator.world.services[API].revisions[name]
    # The image of 00014-def: it behaves as that revision did.
    assert new.ready and new.healthy and new.named


async def test_image_edit_on_a_broken_image_behaves_like_it(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    emulator.world.services[API].revisions[OLD].healthy = False
    snapshot = await cloud_run.read_service(API, REGION)
    await _apply(cloud_run, await cloud_run.update_service(
        snapshot, edit=TemplateEdit(image=IMAGE.format("v1.2.2")), to_latest=True))
    after = await cloud_run.read_service(API, REGION)
    [(new, percent)] = after.state.serving().items()
    assert re.fullmatch(r"medicalcor-api-00016-[a-z]{3}", new) and percent == 100
    assert not emulator.world.services[API].revisions[new].healthy


async def test_env_set_and_unset_keep_the_order(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    edit = TemplateEdit(set_env={"LOG_LEVEL": "info", "NEW_FLAG": "on"},
                        unset_env=frozenset({"FEATURE_X"}))
    await _apply(cloud_run, await cloud_run.update_service(
        snapshot, edit=edit, revision_name="medicalcor-api-00016-env", labels=LABEL))
    after = await cloud_run.read_service(API, REGION)
    assert after.template.env == (
        EnvVar("LOG_LEVEL", "info"),
        EnvVar("API_SECRET_KEY", secret=SecretRef("API_SECRET_KEY", "2")),
        EnvVar("WEBHOOK_TOKEN", "whk_live_00015-abc_s3cr3t"),
        EnvVar("NEW_FLAG", "on"))
    assert after.state.serving() == {SERVING: 100}  # traffic left as it was
    sent = _sent_template(emulator)
    expected = _read_template(snapshot)
    del expected.containers[0].env[:]
    expected.containers[0].env.extend(sent.containers[0].env)
    expected.revision = "medicalcor-api-00016-env"
    expected.labels.update(LABEL)
    assert sent == expected  # nothing but env, name and label changed


async def test_setting_a_secret_backed_key_makes_it_plain(cloud_run: GoogleCloudRun) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    await _apply(cloud_run, await cloud_run.update_service(
        snapshot, edit=TemplateEdit(set_env={"API_SECRET_KEY": "plain"})))
    after = await cloud_run.read_service(API, REGION)
    assert [var.name for var in after.template.env] == ["LOG_LEVEL", "FEATURE_X",
                                                          "API_SECRET_KEY", "WEBHOOK_TOKEN"]
    assert after.template.env_value("API_SECRET_KEY") == EnvVar("API_SECRET_KEY", "plain")


async def test_secret_versions_pin_env_refs_and_volume_items(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    await _apply(cloud_run, await cloud_run.update_service(
        snapshot, edit=TemplateEdit(secret_versions={"API_SECRET_KEY": "1"}),
        revision_name="medicalcor-api-00016-sec", traffic={"medicalcor-api-00016-sec": 100}))
    config = await cloud_run.get_revision_config(API, REGION, "medicalcor-api-00016-sec")
    assert config.secret_refs() == {"API_SECRET_KEY": {"1"}}
    assert config.env_value("API_SECRET_KEY") == EnvVar(
        "API_SECRET_KEY", secret=SecretRef("API_SECRET_KEY", "1"))
    assert config.secret_volumes[0].versions == (("key", "1"),)
    sent = _sent_template(emulator)
    expected = _read_template(snapshot)
    expected.containers[0].env[2].value_source.secret_key_ref.version = "1"
    expected.volumes[0].secret.items[0].version = "1"
    expected.revision = "medicalcor-api-00016-sec"
    assert sent == expected


async def test_pinning_a_secret_the_template_does_not_use_is_refused(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    with pytest.raises(GoogleCallError) as raised:
        await cloud_run.update_service(snapshot, edit=TemplateEdit(secret_versions={"NOPE": "1"}))
    assert raised.value.kind == "invalid" and "NOPE" in raised.value.message
    assert not emulator.calls_to(methods.UPDATE_SERVICE)


async def test_to_latest_routes_everything_to_the_newest_revision(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    emulator.world.services[API].traffic[0].revision = OLD
    snapshot = await cloud_run.read_service(API, REGION)
    assert snapshot.state.serving() == {OLD: 100}
    await _apply(cloud_run, await cloud_run.update_service(snapshot, to_latest=True))
    after = await cloud_run.read_service(API, REGION)
    assert after.state.serving() == {SERVING: 100}
    assert [t.latest for t in after.state.traffic] == [True]
    assert len(emulator.world.services[API].revisions) == 3  # no new revision


async def test_traffic_only_update_makes_no_revision(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    await _apply(cloud_run, await cloud_run.update_service(snapshot, traffic={OLD: 100}))
    after = await cloud_run.read_service(API, REGION)
    assert after.state.serving() == {OLD: 100}
    assert after.template == snapshot.template
    assert sorted(emulator.world.services[API].revisions) == [
        "medicalcor-api-00013-ghi", OLD, SERVING]
    assert _sent_template(emulator) == _read_template(snapshot)


async def test_validate_only_changes_nothing(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    name = "medicalcor-api-00016-val"
    operation = await cloud_run.update_service(
        snapshot, traffic={name: 100}, edit=TemplateEdit(image=IMAGE.format("v1.2.2")),
        revision_name=name, validate_only=True)
    assert operation == ""
    after = await cloud_run.read_service(API, REGION)
    assert after.etag == snapshot.etag and after.state.serving() == {SERVING: 100}
    assert name not in emulator.world.services[API].revisions
    with pytest.raises(GoogleCallError) as raised:  # validated all the same
        await cloud_run.update_service(snapshot, traffic={"medicalcor-api-00099-zzz": 100},
                                       validate_only=True)
    assert raised.value.kind == "invalid" and "does not exist" in raised.value.message
    with pytest.raises(GoogleCallError, match="add up to 100"):
        await cloud_run.update_service(snapshot, traffic={OLD: 60}, validate_only=True)


async def test_stale_snapshot_is_a_conflict_not_retried(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    stale = await cloud_run.read_service(API, REGION)
    await _apply(cloud_run, await cloud_run.update_service(stale, traffic={OLD: 100}))
    with pytest.raises(GoogleCallError) as raised:
        await cloud_run.update_service(
            stale, edit=TemplateEdit(image=IMAGE.format("v1.2.1")), traffic={SERVING: 100})
    assert raised.value.kind == "conflict" and not raised.value.transient
    assert len(emulator.calls_to(methods.UPDATE_SERVICE)) == 2  # sent once, not retried
    assert emulator.world.serving(API) == {OLD: 100}


async def test_existing_revision_name_is_invalid(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    snapshot = await cloud_run.read_service(API, REGION)
    for validate_only in (True, False):
        with pytest.raises(GoogleCallError) as raised:
            await cloud_run.update_service(
                snapshot, edit=TemplateEdit(image=IMAGE.format("v1.2.2")), revision_name=OLD,
                validate_only=validate_only)
        assert raised.value.kind == "invalid"
        assert "already exists" in raised.value.message and OLD in raised.value.message
    assert len(emulator.world.services[API].revisions) == 3


async def test_a_named_template_is_renamed_by_cloud_run_on_the_next_edit(
        cloud_run: GoogleCloudRun, emulator: GoogleEmulator) -> None:
    """After a named deploy the template carries that name; an edit without a new
    name must not send it again (Cloud Run would refuse it as existing)."""
    first = await cloud_run.read_service(API, REGION)
    await _apply(cloud_run, await cloud_run.update_service(
        first, edit=TemplateEdit(set_env={"FEATURE_X": "false"}),
        revision_name="medicalcor-api-00016-one"))
    second = await cloud_run.read_service(API, REGION)
    assert second.template.revision == "medicalcor-api-00016-one"
    await _apply(cloud_run, await cloud_run.update_service(
        second, edit=TemplateEdit(set_env={"FEATURE_X": "true"})))
    third = await cloud_run.read_service(API, REGION)
    assert third.template.revision == ""
    assert re.fullmatch(r"medicalcor-api-00017-[a-z]{3}",
                        third.state.latest_ready_revision)
