"""diff_configs and short_summary: what changes going from the serving revision to
another, told without ever showing a secret's value."""

from __future__ import annotations

import dataclasses

import pytest

from bot.config_diff import ConfigDifference, diff_configs, image_label, short_summary
from bot.masking import MASK, SECRET_ENV_PATTERNS_DEFAULT, Masker
from integrations.cloud_run import EnvVar, RevisionConfig, SecretRef, SecretVolume

IMAGE = "europe-west3-docker.pkg.dev/medicalcor-prod/apps/medicalcor-api:{}"
STRIPE_NOW = "sk_live_NOW_51HxQ2eZvKYlo2C0"
STRIPE_THEN = "sk_live_THEN_9aBcDeFgHiJkLm"
MASKER = Masker(SECRET_ENV_PATTERNS_DEFAULT)


def _config(**changes: object) -> RevisionConfig:
    base = RevisionConfig(
        revision="medicalcor-api-00015-abc",
        image=IMAGE.format("v1.3.0"),
        env=(EnvVar("LOG_LEVEL", "debug"), EnvVar("FEATURE_X", "true"),
             EnvVar("STRIPE_API_KEY", STRIPE_NOW),
             EnvVar("API_KEY", secret=SecretRef("API_KEY", "7"))),
        secret_volumes=(SecretVolume("api-secret", "/secrets/api", "API_KEY", (("key", "7"),)),),
        cpu="1", memory="1Gi", min_instances=0, max_instances=20,
        service_account="api@medicalcor-prod.iam.gserviceaccount.com",
        timeout_seconds=300.0,
        labels={"team": "platform", "serving.knative.dev/service": "medicalcor-api"},
        annotations={"run.googleapis.com/startup-cpu-boost": "true",
                     "serving.knative.dev/creator": "ci@medicalcor.com"},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


SERVING = _config()
OLD = _config(
    revision="medicalcor-api-00014-def",
    image=IMAGE.format("v1.2.2"),
    env=(EnvVar("LOG_LEVEL", "info"), EnvVar("STRIPE_API_KEY", STRIPE_THEN),
         EnvVar("API_KEY", secret=SecretRef("API_KEY", "5"))),
    secret_volumes=(SecretVolume("api-secret", "/secrets/api", "API_KEY", (("key", "5"),)),),
    memory="512Mi", max_instances=10, timeout_seconds=60.0,
    labels={"team": "payments", "rollbot-change": "rb-9",
            "serving.knative.dev/service": "medicalcor-api"},
    annotations={"run.googleapis.com/startup-cpu-boost": "false",
                 "serving.knative.dev/creator": "ana@medicalcor.com",
                 "client.knative.dev/user-image": "x", "owner": "ana"},
)


def _everything(diffs: list[ConfigDifference]) -> str:
    return repr(diffs) + short_summary(diffs, limit=100) + short_summary(diffs)


def test_same_config_has_no_differences() -> None:
    assert diff_configs(SERVING, _config(revision="other"), MASKER) == []
    assert short_summary([]) == ""


def test_every_kind_of_difference_in_order() -> None:
    diffs = diff_configs(SERVING, OLD, MASKER)
    assert diffs == [
        ConfigDifference("image", IMAGE.format("v1.3.0"), IMAGE.format("v1.2.2")),
        ConfigDifference("env LOG_LEVEL", "debug", "info"),
        ConfigDifference("env FEATURE_X", "true", "(unset)"),
        ConfigDifference("env STRIPE_API_KEY", MASK, MASK),
        ConfigDifference("secret API_KEY", "API_KEY@7", "API_KEY@5"),
        ConfigDifference("memory", "1Gi", "512Mi"),
        ConfigDifference("scaling", "min 0 / max 20", "min 0 / max 10"),
        ConfigDifference("timeout", "300s", "60s"),
        ConfigDifference("label team", "platform", "payments"),
        ConfigDifference("annotation owner", "(unset)", "ana"),
    ]


def test_short_summary_names_without_values() -> None:
    diffs = diff_configs(SERVING, OLD, MASKER)
    assert short_summary(diffs) == (
        "image v1.3.0→v1.2.2, env LOG_LEVEL, env FEATURE_X, env STRIPE_API_KEY, +6 more")
    assert short_summary(diffs, limit=100) == (
        "image v1.3.0→v1.2.2, env LOG_LEVEL, env FEATURE_X, env STRIPE_API_KEY, "
        "secret API_KEY@7→@5, memory 1Gi→512Mi, scaling, timeout 300s→60s, label team, "
        "annotation owner")
    assert "debug" not in short_summary(diffs, limit=100)


def test_secret_values_never_appear_in_any_output() -> None:
    added = _config(env=(*SERVING.env, EnvVar("GITHUB_TOKEN", "ghp_abcdefghijklmnop")))
    outputs = _everything(diff_configs(SERVING, OLD, MASKER)) + _everything(
        diff_configs(OLD, added, MASKER)) + _everything(diff_configs(added, SERVING, MASKER))
    for secret in (STRIPE_NOW, STRIPE_THEN, "ghp_abcdefghijklmnop"):
        assert not any(secret[i:i + 5] in outputs for i in range(len(secret) - 4)), secret
    assert ConfigDifference("env GITHUB_TOKEN", MASK, "(unset)") in diff_configs(
        added, SERVING, MASKER)


def test_a_secret_ref_becoming_plain_is_an_env_change_shown_masked() -> None:
    plain = _config(env=(*SERVING.env[:3], EnvVar("API_KEY", "hunter2hunter2")),
                    secret_volumes=())
    diffs = diff_configs(SERVING, plain, MASKER)
    assert ConfigDifference("env API_KEY", "secret:API_KEY@7", MASK) in diffs
    assert ConfigDifference("secret API_KEY", "API_KEY@7", "(unset)") in diffs
    assert ConfigDifference("volume api-secret", "API_KEY at /secrets/api", "(unset)") in diffs
    assert "hunter2" not in _everything(diffs)
    assert "secret API_KEY@7→ unset" not in short_summary(diffs, limit=100)
    assert "secret API_KEY@7→unset" in short_summary(diffs, limit=100)


def test_latest_is_shown_as_latest() -> None:
    latest = _config(env=(*SERVING.env[:3], EnvVar("API_KEY", secret=SecretRef("API_KEY",
                                                                                 "latest"))),
                     secret_volumes=(SecretVolume("api-secret", "/secrets/api", "API_KEY", ()),))
    diffs = diff_configs(SERVING, latest, MASKER)
    assert diffs == [ConfigDifference("secret API_KEY", "API_KEY@7", "API_KEY@latest")]
    assert short_summary(diffs) == "secret API_KEY@7→@latest"


def test_versions_of_one_secret_in_env_and_volume_differ() -> None:
    split = _config(secret_volumes=(
        SecretVolume("api-secret", "/secrets/api", "API_KEY", (("key", "12"),)),))
    assert diff_configs(SERVING, split, MASKER) == [
        ConfigDifference("secret API_KEY", "API_KEY@7", "API_KEY@7/12")]


def test_system_labels_annotations_and_rollbots_label_are_ignored() -> None:
    ours = _config(labels={**SERVING.labels, "rollbot-change": "rb-1",
                           "cloud.googleapis.com/location": "europe-west3"},
                   annotations={"client.knative.dev/user-image": "y"})
    assert diff_configs(SERVING, ours, MASKER) == []


def test_secret_looking_label_values_are_masked() -> None:
    labelled = _config(labels={**SERVING.labels, "deploy-token": "abc123secretvalue"})
    assert diff_configs(SERVING, labelled, MASKER) == [
        ConfigDifference("label deploy-token", "(unset)", MASK)]


def test_cpu_service_account_and_volume_mounts() -> None:
    other = _config(cpu="2", service_account="other@p.iam.gserviceaccount.com",
                    secret_volumes=(SecretVolume("api-secret", "", "API_KEY", (("key", "7"),)),))
    diffs = diff_configs(SERVING, other, MASKER)
    assert [d.field for d in diffs] == ["volume api-secret", "cpu", "service account"]
    assert diffs[0].after == "API_KEY at (not mounted)"
    assert short_summary(diffs) == "volume api-secret, cpu 1→2, service account"


@pytest.mark.parametrize(("image", "label"), [
    (IMAGE.format("v1.2.2"), "v1.2.2"),
    ("localhost:5000/app:v2", "v2"),
    ("gcr.io/p/app@sha256:" + "ab12cd34" * 8, "sha256:ab12cd3"),
    ("gcr.io/p/app:v3@sha256:" + "ab12cd34" * 8, "v3"),
    ("gcr.io/p/app", "app"),
    ("", "(unset)"),
])
def test_image_label(image: str, label: str) -> None:
    assert image_label(image) == label
