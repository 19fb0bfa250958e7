"""World objects -> Cloud Run Admin API v2 messages (run_v2.Service / run_v2.Revision)."""

from __future__ import annotations

import datetime as dt
import hashlib
import types
from typing import Any

from google.cloud import run_v2
from google.protobuf import duration_pb2, timestamp_pb2

from ..world import EmuEnvVar, EmuRevision, EmuSecretVolume, EmuService, EmuTrafficTarget, World
from .common import stable_uid

CREATOR_ANNOTATION = "serving.knative.dev/creator"

_TYPE = run_v2.TrafficTargetAllocationType
_STATE = run_v2.Condition.State
# The raw protobuf classes behind run_v2's proto-plus ones (see service_message).
_PB = types.SimpleNamespace(**{kind: getattr(run_v2, kind).pb() for kind in (
    "Condition", "Container", "EnvVar", "EnvVarSource", "ResourceRequirements", "Revision",
    "RevisionScaling", "RevisionTemplate", "SecretKeySelector", "SecretVolumeSource",
    "Service", "TrafficTarget", "TrafficTargetStatus", "VersionToPath", "Volume",
    "VolumeMount")})


def tag_uri(world: World, svc: EmuService, tag: str) -> str:
    """A tagged target's own URL: Cloud Run's `https://<tag>---<service host>`, or, when
    the World serves tags locally (`tag_url_base`, set by the launcher to the target
    app's `/_tags`), `<tag_url_base>/<tag>---<service>`."""
    if world.tag_url_base:
        return f"{world.tag_url_base}/{tag}---{svc.name}"
    return svc.uri.replace("https://", f"https://{tag}---")


def etag(world: World, svc: EmuService) -> str:
    """Opaque, changes on every applied update (the generation bumps)."""
    digest = hashlib.sha1(f"{world.service_name(svc.name)}@{svc.generation}".encode()).hexdigest()
    return f'"{digest[:20]}"'


def latest_created(svc: EmuService) -> EmuRevision | None:
    revisions = list(svc.revisions.values())
    return max(revisions, key=lambda r: r.create_time) if revisions else None


def env_vars(rev: EmuRevision) -> list[Any]:
    """A revision's container env as raw protobuf EnvVars, in its order (see service_message)."""
    out = []
    for var in rev.env:
        if var.secret:
            ref = _PB.SecretKeySelector(secret=var.secret, version=var.version)
            out.append(_PB.EnvVar(name=var.name,
                                  value_source=_PB.EnvVarSource(secret_key_ref=ref)))
        else:
            out.append(_PB.EnvVar(name=var.name, value=var.value))
    return out


def _container(rev: EmuRevision) -> Any:
    limits = {k: v for k, v in (("cpu", rev.cpu), ("memory", rev.memory)) if v}
    return _PB.Container(
        image=rev.image, env=env_vars(rev),
        resources=_PB.ResourceRequirements(limits=limits),
        volume_mounts=[_PB.VolumeMount(name=v.name, mount_path=v.mount_path)
                       for v in rev.secret_volumes if v.mount_path],
    )


def _volumes(rev: EmuRevision) -> list[Any]:
    return [
        _PB.Volume(name=v.name, secret=_PB.SecretVolumeSource(
            secret=v.secret,
            items=[_PB.VersionToPath(path=path, version=version) for path, version in v.items]))
        for v in rev.secret_volumes
    ]


def _run_config(rev: EmuRevision) -> dict[str, Any]:
    """The fields a Revision and a RevisionTemplate share (same names in both)."""
    return {
        "scaling": _PB.RevisionScaling(min_instance_count=rev.min_instances,
                                       max_instance_count=rev.max_instances),
        "timeout": duration_pb2.Duration(seconds=rev.timeout_seconds),
        "service_account": rev.service_account,
        "containers": [_container(rev)],
        "volumes": _volumes(rev),
    }


def template_message(rev: EmuRevision) -> Any:
    """The service's template when `rev` is its newest revision (raw protobuf)."""
    return _PB.RevisionTemplate(
        revision=rev.name if rev.named else "", labels=rev.labels,
        annotations=rev.annotations, **_run_config(rev))


def revision_config(template: Any) -> dict[str, Any]:
    """A requested RevisionTemplate (raw protobuf) -> the EmuRevision fields it sets.

    Only what the emulator models: the caller checks that rendering them back gives
    the same template, so nothing sent is silently dropped."""
    container = template.containers[0]
    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    env = []
    for var in container.env:
        ref = var.value_source.secret_key_ref
        env.append(EmuEnvVar(var.name, secret=ref.secret, version=ref.version) if ref.secret
                   else EmuEnvVar(var.name, var.value))
    volumes = [
        EmuSecretVolume(v.name, v.secret.secret,
                        [(item.path, item.version) for item in v.secret.items],
                        mounts.get(v.name, ""))
        for v in template.volumes
    ]
    return {
        "image": container.image, "env": env, "secret_volumes": volumes,
        "cpu": container.resources.limits.get("cpu", ""),
        "memory": container.resources.limits.get("memory", ""),
        "min_instances": template.scaling.min_instance_count,
        "max_instances": template.scaling.max_instance_count,
        "service_account": template.service_account,
        "timeout_seconds": template.timeout.seconds,
        "labels": dict(template.labels), "annotations": dict(template.annotations),
    }


def same_template(a: Any, b: Any) -> bool:
    """Two RevisionTemplates (raw protobuf) equal field by field, revision names aside."""
    a_copy, b_copy = type(a)(), type(b)()
    a_copy.CopyFrom(a)
    b_copy.CopyFrom(b)
    a_copy.revision = b_copy.revision = ""
    return bool(a_copy == b_copy)


def _timestamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _condition(kind: str, ok: bool, when: dt.datetime, message: str = "") -> Any:
    return _PB.Condition(
        type_=kind,
        state=_STATE.CONDITION_SUCCEEDED if ok else _STATE.CONDITION_FAILED,
        last_transition_time=_timestamp(when),
        message="" if ok else message,
        severity=run_v2.Condition.Severity.ERROR if not ok else
        run_v2.Condition.Severity.SEVERITY_UNSPECIFIED,
    )


def _resolve(svc: EmuService, target: EmuTrafficTarget) -> str:
    return (svc.latest_ready_revision() or "") if target.latest else (target.revision or "")


def service_message(world: World, svc: EmuService, *, reconciling: bool = False) -> run_v2.Service:
    name = world.service_name(svc.name)
    revisions = sorted(svc.revisions.values(), key=lambda r: r.create_time)
    newest = revisions[-1] if revisions else None
    ready_name = svc.latest_ready_revision()
    ready = newest is None or newest.ready
    not_ready = f"Revision '{newest.name}' is not ready." if newest else ""
    created = revisions[0].create_time if revisions else svc.update_time
    traffic = [
        _PB.TrafficTarget(
            type_=_TYPE.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST if t.latest
            else _TYPE.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision="" if t.latest else (t.revision or ""),
            percent=t.percent,
            tag=t.tag,
        )
        for t in svc.traffic
    ]
    statuses = [
        _PB.TrafficTargetStatus(
            type_=target.type_, revision=_resolve(svc, emu), percent=target.percent,
            tag=target.tag,
            uri=tag_uri(world, svc, target.tag) if target.tag else "",
        )
        for target, emu in zip(traffic, svc.traffic, strict=True)
    ]
    template = template_message(newest) if newest is not None else _PB.RevisionTemplate()
    terminal = _condition("Ready", ready, svc.update_time, not_ready)
    # Built as protobuf messages and wrapped once: proto-plus marshals every field of
    # every nested message in Python, which made each answer cost about a millisecond.
    return run_v2.Service.wrap(_PB.Service(
        name=name,
        uid=stable_uid(name),
        generation=svc.generation,
        observed_generation=svc.generation,
        create_time=_timestamp(created),
        update_time=_timestamp(svc.update_time),
        creator=revisions[0].creator if revisions else "",
        last_modifier=newest.creator if newest else "",
        ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL,
        template=template,
        traffic=traffic,
        traffic_statuses=statuses,
        uri=svc.uri,
        urls=[svc.uri] if svc.uri else [],
        latest_ready_revision=world.revision_name(svc.name, ready_name) if ready_name else "",
        latest_created_revision=world.revision_name(svc.name, newest.name) if newest else "",
        terminal_condition=terminal,
        conditions=[
            terminal,
            _condition("ConfigurationsReady", ready, svc.update_time, not_ready),
            _condition("RoutesReady", True, svc.update_time),
        ],
        reconciling=reconciling,
        etag=etag(world, svc),
    ))


def revision_message(world: World, svc: EmuService, rev: EmuRevision) -> run_v2.Revision:
    name = world.revision_name(svc.name, rev.name)
    failure = "The user-provided container failed to start and listen on the port."
    return run_v2.Revision.wrap(_PB.Revision(
        name=name,
        uid=stable_uid(name),
        generation=1,
        observed_generation=1,
        service=svc.name,
        labels={
            **rev.labels,
            "serving.knative.dev/service": svc.name,
            "cloud.googleapis.com/location": world.region,
        },
        annotations={CREATOR_ANNOTATION: rev.creator, **rev.annotations},
        creator=rev.creator,
        create_time=_timestamp(rev.create_time),
        update_time=_timestamp(rev.create_time),
        **_run_config(rev),
        conditions=[_condition("Ready", rev.ready, rev.create_time, failure)],
        log_uri=(f"https://console.cloud.google.com/logs/viewer?project={world.project}"
                 f"&resource=cloud_run_revision/revision_name/{rev.name}"),
        etag=f'"{stable_uid(name)[:20]}"',
    ))
