"""The deployment files agree with the code: Slack manifests, Cloud Run service, image."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import handlers
from bot.config import Settings
from handlers.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HTTP_MANIFEST = DEPLOY / "slack-app-manifest.yaml"
SOCKET_MANIFEST = DEPLOY / "slack-app-manifest-socket.yaml"
MANIFESTS = [HTTP_MANIFEST, SOCKET_MANIFEST]
SECRET_ENV = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "REDIS_URL")


class RecordingApp:
    """Stands in for Bolt's AsyncApp: records what handlers.register asks for."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.actions: list[str] = []
        self.events: list[str] = []
        self.views: list[str] = []

    def _record(self, into: list[str], name: Any) -> Any:
        into.append(name)
        return lambda fn: fn

    def command(self, name: str) -> Any:
        return self._record(self.commands, name)

    def action(self, name: Any) -> Any:
        return self._record(self.actions, name)

    def event(self, name: Any) -> Any:
        return self._record(self.events, name)

    def view(self, name: Any) -> Any:
        return self._record(self.views, name)


@pytest.fixture(scope="module")
def registered() -> RecordingApp:
    app = RecordingApp()
    handlers.register(app)  # type: ignore[arg-type]
    return app


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---- Slack manifests -----------------------------------------------------------

def test_commands_constant_is_what_the_app_registers(registered: RecordingApp) -> None:
    assert sorted(registered.commands) == sorted(COMMANDS)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_lists_every_registered_command(path: Path, registered: RecordingApp) -> None:
    manifest = load(path)
    listed = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert sorted(listed) == sorted(set(registered.commands))
    assert len(listed) == len(set(listed)), "a command is listed twice"
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_subscribes_to_every_registered_event(
    path: Path, registered: RecordingApp
) -> None:
    settings = load(path)["settings"]
    assert set(registered.events) <= set(settings["event_subscriptions"]["bot_events"])
    assert "app_home_opened" in settings["event_subscriptions"]["bot_events"]
    if registered.actions:
        assert settings["interactivity"]["is_enabled"] is True


def test_http_manifest_points_everything_at_slack_events() -> None:
    manifest = load(HTTP_MANIFEST)
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")
    for command in manifest["features"]["slash_commands"]:
        assert command["url"].endswith("/slack/events")


def test_socket_manifest_enables_socket_mode() -> None:
    assert load(SOCKET_MANIFEST)["settings"]["socket_mode_enabled"] is True


# ---- Cloud Run service -----------------------------------------------------------

@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    doc = load(DEPLOY / "cloud-run-service.yaml")
    assert doc["apiVersion"] == "serving.knative.dev/v1"
    assert doc["kind"] == "Service"
    return doc  # type: ignore[no-any-return]


def container(service: dict[str, Any]) -> dict[str, Any]:
    containers = service["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def env_of(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(service)["env"]}


def test_cpu_always_allocated_and_one_instance_always_up(service: dict[str, Any]) -> None:
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    # Quoted strings: Knative annotations are strings, and so must the YAML be.
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    assert isinstance(annotations["autoscaling.knative.dev/minScale"], str)
    assert int(annotations["autoscaling.knative.dev/minScale"]) >= 1
    max_scale = annotations.get("autoscaling.knative.dev/maxScale")
    if max_scale is not None:
        assert int(max_scale) >= int(annotations["autoscaling.knative.dev/minScale"])


def test_probes_hit_healthz_on_the_container_port(service: dict[str, Any]) -> None:
    main = container(service)
    port = main["ports"][0]["containerPort"]
    assert port == 8080
    for probe in ("startupProbe", "livenessProbe"):
        http_get = main[probe]["httpGet"]
        assert http_get["path"] == "/healthz"
        assert http_get["port"] == port


def test_runs_as_a_dedicated_service_account(service: dict[str, Any]) -> None:
    account = service["spec"]["template"]["spec"]["serviceAccountName"]
    assert re.fullmatch(r"rollbot@[A-Za-z0-9-]+\.iam\.gserviceaccount\.com", account)
    assert "compute@developer" not in account


def test_concurrency_is_bounded(service: dict[str, Any]) -> None:
    concurrency = service["spec"]["template"]["spec"]["containerConcurrency"]
    assert 1 <= concurrency <= 250


def test_secrets_come_from_secret_manager(service: dict[str, Any]) -> None:
    env = env_of(service)
    for name in SECRET_ENV:
        assert "value" not in env[name], f"{name} must not be a literal"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] and ref["key"]


def test_env_names_are_ones_the_bot_reads(service: dict[str, Any]) -> None:
    known = {f.alias for f in Settings.model_fields.values()} | {"GOOGLE_CLOUD_PROJECT"}
    assert set(env_of(service)) <= known
    assert env_of(service)["LOG_FORMAT"]["value"] == "json"


def test_catalog_is_mounted_where_rollbot_config_points(service: dict[str, Any]) -> None:
    config = Path(env_of(service)["ROLLBOT_CONFIG"]["value"])
    mounts = {m["name"]: m for m in container(service)["volumeMounts"]}
    volumes = {v["name"]: v for v in service["spec"]["template"]["spec"]["volumes"]}
    mounted = [
        (mounts[name], volume) for name, volume in volumes.items()
        if name in mounts and Path(mounts[name]["mountPath"]) == config.parent
    ]
    assert mounted, f"no volume mounted at {config.parent}"
    mount, volume = mounted[0]
    assert mount.get("readOnly") is True
    assert config.name in [item["path"] for item in volume["secret"]["items"]]


# ---- image -----------------------------------------------------------------------

def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuations joined, comments dropped) per FROM stage."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[list[str]] = []
    for line in (ln.strip() for ln in joined.splitlines()):
        if not line:
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "python:3.11-slim" in text
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert any("pip install ." in line for line in stages[0])


def test_final_stage_copies_the_venv_and_runs_as_non_root() -> None:
    final = dockerfile_stages()[-1]
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "10001"
    copies = [line for line in final if line.upper().startswith("COPY ")]
    assert copies and all("--from=" in line for line in copies), "final stage copies only"
    assert 'CMD ["rollbot", "serve"]' in final
    assert any("PORT=8080" in line for line in final)


def test_final_stage_has_no_build_tools() -> None:
    final = " ".join(dockerfile_stages()[-1])
    for tool in ("gcc", "build-essential", "apt-get install", "pip install", "make "):
        assert tool not in final


def test_dockerignore_keeps_only_what_the_image_copies() -> None:
    ignore = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert ignore[0] == "*", "start from nothing and re-include"
    included = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    copied: set[str] = set()
    for stage in dockerfile_stages():
        for line in stage:
            parts = line.split()
            if parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                copied.update(p.rstrip("/") for p in parts[1:-1])
    assert copied and copied <= included
    for path in copied:
        assert (ROOT / path).exists(), path
