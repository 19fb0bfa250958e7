"""What a Cloud Run revision runs with, read from its protobuf, and the edits rollbot
makes to a service's template before sending it back in an UpdateService.

A Revision and a RevisionTemplate share the field names read here (containers,
volumes, scaling, service_account, timeout, labels, annotations), so one reader
serves both. Everything is read and edited on the raw protobuf: proto-plus wraps
every field access in Python.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from google.cloud import run_v2

_REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
_LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
_PB_ENV_VAR = run_v2.EnvVar.pb()
_PB_CONTAINER = run_v2.Container.pb()


@dataclasses.dataclass(frozen=True)
class SecretRef:
    secret: str  # short secret name, e.g. "API_SECRET_KEY"
    version: str  # "5" or "latest"


@dataclasses.dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None  # plain value
    secret: SecretRef | None = None  # value_source.secret_key_ref


@dataclasses.dataclass(frozen=True)
class SecretVolume:
    volume: str  # volume name
    mount_path: str  # where containers[0] mounts it ("" if not mounted)
    secret: str
    versions: tuple[tuple[str, str], ...]  # (path, version) per item; empty: latest whole secret


@dataclasses.dataclass(frozen=True)
class RevisionConfig:
    """What a revision (or the service's template) runs with."""

    revision: str  # revision name ("" for a service template without template.revision)
    image: str
    env: tuple[EnvVar, ...]
    secret_volumes: tuple[SecretVolume, ...]
    cpu: str  # containers[0].resources.limits["cpu"], "" if unset
    memory: str
    min_instances: int
    max_instances: int
    service_account: str
    timeout_seconds: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    def env_value(self, key: str) -> EnvVar | None:
        return next((var for var in self.env if var.name == key), None)

    def secret_refs(self) -> dict[str, set[str]]:
        """Secret -> the versions this config reads (env refs and volume items)."""
        refs: dict[str, set[str]] = {}
        for var in self.env:
            if var.secret is not None:
                refs.setdefault(var.secret.secret, set()).add(var.secret.version)
        for volume in self.secret_volumes:
            versions = {version for _, version in volume.versions} or {"latest"}
            refs.setdefault(volume.secret, set()).update(versions)
        return refs


@dataclasses.dataclass(frozen=True)
class TemplateEdit:
    """A change to a service's template; see `apply_edit`."""

    image: str | None = None
    set_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    unset_env: frozenset[str] = frozenset()
    secret_versions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        both = set(self.set_env) & self.unset_env
        if both:
            raise ValueError(f"env both set and unset: {', '.join(sorted(both))}")

    def __bool__(self) -> bool:
        return bool(self.image is not None or self.set_env or self.unset_env
                    or self.secret_versions)


class TemplateEditError(ValueError):
    """An edit cannot be applied to this template (says why, for people)."""


def short_secret(name: str) -> str:
    """Cloud Run accepts "projects/P/secrets/S" or "S"."""
    return name.rsplit("/", 1)[-1]


# --- reading ------------------------------------------------------------------
def _env(var: Any) -> EnvVar:
    ref = var.value_source.secret_key_ref
    if var.HasField("value_source") and ref.secret:
        return EnvVar(var.name, secret=SecretRef(short_secret(ref.secret),
                                                 ref.version or "latest"))
    return EnvVar(var.name, value=var.value)


def _config(revision: str, pb: Any) -> RevisionConfig:
    container = pb.containers[0] if pb.containers else _PB_CONTAINER()
    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    limits = container.resources.limits
    return RevisionConfig(
        revision=revision,
        image=container.image,
        env=tuple(_env(var) for var in container.env),
        secret_volumes=tuple(
            SecretVolume(
                volume=v.name, mount_path=mounts.get(v.name, ""),
                secret=short_secret(v.secret.secret),
                versions=tuple((i.path, i.version or "latest") for i in v.secret.items))
            for v in pb.volumes if v.HasField("secret")
        ),
        cpu=limits.get("cpu", ""),
        memory=limits.get("memory", ""),
        min_instances=pb.scaling.min_instance_count,
        max_instances=pb.scaling.max_instance_count,
        service_account=pb.service_account,
        timeout_seconds=pb.timeout.seconds + pb.timeout.nanos / 1e9,
        labels=dict(pb.labels),
        annotations=dict(pb.annotations),
    )


def config_from_revision(revision: run_v2.Revision) -> RevisionConfig:
    rev = run_v2.Revision.pb(revision)
    return _config(short_secret(rev.name), rev)


def config_from_service(service: run_v2.Service) -> RevisionConfig:
    """What a new revision of the service would run with: its template."""
    template = run_v2.Service.pb(service).template
    return _config(template.revision, template)


# --- editing --------------------------------------------------------------------
def _edit_env(container: Any, edit: TemplateEdit) -> None:
    pending = dict(edit.set_env)
    env = []
    for var in container.env:
        if var.name in edit.unset_env:
            continue
        if var.name in pending:  # in place; a secret ref becomes a plain value
            env.append(_PB_ENV_VAR(name=var.name, value=pending.pop(var.name)))
        else:
            kept = _PB_ENV_VAR()
            kept.CopyFrom(var)
            env.append(kept)
    env.extend(_PB_ENV_VAR(name=name, value=value) for name, value in pending.items())
    del container.env[:]
    container.env.extend(env)


def _pin_secrets(template: Any, versions: Mapping[str, str]) -> None:
    found: set[str] = set()
    for var in template.containers[0].env:
        ref = var.value_source.secret_key_ref
        if var.HasField("value_source") and short_secret(ref.secret) in versions:
            ref.version = versions[short_secret(ref.secret)]
            found.add(short_secret(ref.secret))
    for volume in template.volumes:
        secret = short_secret(volume.secret.secret)
        if not volume.HasField("secret") or secret not in versions:
            continue
        if not volume.secret.items:
            # No item to pin: the whole secret is mounted under file names Cloud Run
            # picks; adding one would guess a path the app may not read.
            raise TemplateEditError(
                f"volume '{volume.name}' mounts all of secret {secret} (latest) without "
                "items; pin it by hand with a path for the version")
        for item in volume.secret.items:
            item.version = versions[secret]
        found.add(secret)
    missing = sorted(set(versions) - found)
    if missing:
        raise TemplateEditError(f"the template does not use secret {', '.join(missing)}")


def apply_edit(template: Any, edit: TemplateEdit) -> None:
    """Apply `edit` to a RevisionTemplate (raw protobuf, the caller's own copy).

    image and env apply to containers[0]; env keeps its order (new keys go last,
    unset keys go, a set on a secret-ref key makes it a plain value); secret_versions
    re-pins every env ref and every volume item of each secret named."""
    if not template.containers:
        raise TemplateEditError("the service's template has no container to edit")
    container = template.containers[0]
    if edit.image is not None:
        container.image = edit.image
    if edit.set_env or edit.unset_env:
        _edit_env(container, edit)
    if edit.secret_versions:
        _pin_secrets(template, edit.secret_versions)


_TAG = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")  # Cloud Run: DNS-label-like
# Cloud Run: "Combined traffic tag and service name cannot exceed 46 characters" (the
# tag's URL is <tag>---<service>-<hash>.a.run.app, one DNS label).
_TAG_AND_SERVICE_MAX = 46


def _set_traffic(service: Any, traffic: Mapping[str, int] | None, to_latest: bool,
                 tags: Mapping[str, str] | None = None) -> None:
    """Replace a Service's (raw protobuf) traffic: by revision name, or all to latest.
    `tags` (revision -> tag, with `traffic`): those targets carry the tag (a revision
    not in `traffic` becomes a 0% target that only carries it); every other tag goes."""
    if traffic is not None and to_latest:
        raise TemplateEditError("give traffic or to_latest, not both")
    if traffic is None and not to_latest:
        return
    del service.traffic[:]
    if to_latest:
        service.traffic.add(type_=_LATEST, percent=100)
        return
    assert traffic is not None
    tags = dict(tags or {})
    name = str(service.name).rsplit("/", 1)[-1]
    bad = [tag for tag in tags.values()
           if not _TAG.match(tag) or len(tag) + len(name) > _TAG_AND_SERVICE_MAX]
    if bad:
        raise TemplateEditError(
            f"invalid traffic tag {bad[0]!r}: lowercase letters, digits and hyphens, "
            f"starting with a letter, at most {_TAG_AND_SERVICE_MAX - len(name)} characters "
            f"with the service name {name!r} ({_TAG_AND_SERVICE_MAX} together)")
    if len(set(tags.values())) != len(tags):
        raise TemplateEditError("each traffic tag may name one revision only")
    for revision, percent in traffic.items():
        service.traffic.add(type_=_REVISION, revision=revision, percent=percent,
                            tag=tags.pop(revision, ""))
    for revision, tag in tags.items():
        service.traffic.add(type_=_REVISION, revision=revision, percent=0, tag=tag)


def updated_service(
    raw: run_v2.Service, *, traffic: Mapping[str, int] | None, to_latest: bool,
    edit: TemplateEdit | None, revision_name: str | None, labels: Mapping[str, str] | None,
    tags: Mapping[str, str] | None = None,
) -> run_v2.Service:
    """A copy of the service as read, changed only as asked: traffic by revision name
    or all to latest (neither: as read), the template edited, named, labelled."""
    service = run_v2.Service.pb()()
    service.CopyFrom(run_v2.Service.pb(raw))  # the caller's snapshot stays as read
    template = service.template
    if tags and traffic is None:
        raise TemplateEditError("tags are set with traffic by revision name")
    _set_traffic(service, traffic, to_latest, tags)
    if edit:
        apply_edit(template, edit)
    if revision_name is not None:
        template.revision = revision_name
    elif edit or labels:
        # A changed template under the name of an existing revision is refused
        # (ALREADY_EXISTS): let Cloud Run name the new one.
        template.revision = ""
    if labels:
        template.labels.update(labels)
    return run_v2.Service.wrap(service)
