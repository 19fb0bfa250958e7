"""Cloud Run: read services and revisions (and what they run with), shift traffic,
update a service's template.

A small typed interface over google-cloud-run's asyncio clients. Transient
errors (429, 5xx, deadlines) are retried with tenacity; the GAPIC clients' own
retry is switched off so one policy, visible here, decides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import grpc
from google.api_core import exceptions as gexc
from google.cloud import run_v2
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2

from .cloud_run_config import (
    EnvVar,
    RevisionConfig,
    SecretRef,
    SecretVolume,
    TemplateEdit,
    TemplateEditError,
    config_from_revision,
    config_from_service,
    updated_service,
)
from .google_retry import GoogleCallError, RetryPolicy, call_with_retry

__all__ = [
    "CloudRun", "EnvVar", "GoogleCallError", "GoogleCloudRun", "RetryPolicy",
    "Revision", "RevisionConfig", "SecretRef", "SecretVolume", "ServiceSnapshot",
    "ServiceState", "TemplateEdit", "TrafficShare", "revision_from_proto", "service_from_proto",
]

T = TypeVar("T")

CREATOR_ANNOTATION = "serving.knative.dev/creator"


@dataclasses.dataclass(frozen=True)
class Revision:
    name: str  # short name, e.g. medicalcor-api-00014-def
    service: str
    image: str
    created: dt.datetime | None
    creator: str | None
    ready: bool
    ready_message: str = ""

    @property
    def suffix(self) -> str:
        prefix = self.service + "-"
        return self.name[len(prefix):] if self.name.startswith(prefix) else self.name


@dataclasses.dataclass(frozen=True)
class TrafficShare:
    revision: str  # resolved short revision name ("" if Cloud Run has not resolved "latest")
    percent: int
    latest: bool = False
    tag: str = ""
    uri: str = ""  # a tagged target's own URL (Cloud Run's traffic status)


@dataclasses.dataclass(frozen=True)
class ServiceState:
    name: str
    uri: str
    traffic: tuple[TrafficShare, ...]
    latest_ready_revision: str
    etag: str = ""

    def percent_of(self, revision: str) -> int:
        return sum(t.percent for t in self.traffic if t.revision == revision)

    def tag_uri(self, tag: str) -> str | None:
        """The URL that reaches only the revision carrying `tag`."""
        return next((t.uri for t in self.traffic if t.tag == tag and t.uri), None)

    def serving(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.traffic:
            if t.percent:
                out[t.revision] = out.get(t.revision, 0) + t.percent
        return out


@dataclasses.dataclass(frozen=True)
class ServiceSnapshot:
    """One read of a service: what it serves and what a new revision would run with."""

    state: ServiceState
    template: RevisionConfig
    raw: Any  # the run_v2.Service read; update_service sends a copy back (etag included)

    @property
    def etag(self) -> str:
        return self.state.etag


class CloudRun(Protocol):
    async def get_service(self, service: str, region: str) -> ServiceState: ...
    async def list_revisions(
        self, service: str, region: str, limit: int = 10
    ) -> list[Revision]: ...
    async def get_revision(self, service: str, region: str, revision: str) -> Revision: ...
    async def read_service(self, service: str, region: str) -> ServiceSnapshot: ...
    async def get_revision_config(
        self, service: str, region: str, revision: str) -> RevisionConfig: ...
    async def update_service(
        self, snapshot: ServiceSnapshot, *, traffic: Mapping[str, int] | None = None,
        to_latest: bool = False, edit: TemplateEdit | None = None,
        revision_name: str | None = None, labels: Mapping[str, str] | None = None,
        validate_only: bool = False, tags: Mapping[str, str] | None = None,
    ) -> str: ...
    async def wait_operation(self, operation_name: str) -> None: ...


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def revision_from_proto(revision: run_v2.Revision) -> Revision:
    # Read through the raw protobuf (same field names): proto-plus wraps every field
    # read in Python, most of the cost of a revision list.
    rev = run_v2.Revision.pb(revision)
    ready = next((c for c in rev.conditions if c.type_ == "Ready"), None)
    image = rev.containers[0].image if rev.containers else ""
    return Revision(
        name=_short(rev.name),
        service=rev.service or _short(rev.name.split("/revisions/")[0]),
        image=image,
        created=(rev.create_time.ToDatetime(tzinfo=dt.UTC) if rev.HasField("create_time")
                 else None),
        creator=rev.annotations.get(CREATOR_ANNOTATION) or None,
        ready=bool(ready and ready.state == run_v2.Condition.State.CONDITION_SUCCEEDED),
        ready_message=ready.message if ready else "no Ready condition",
    )


def service_from_proto(svc: run_v2.Service) -> ServiceState:
    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    latest_ready = _short(svc.latest_ready_revision)
    # traffic_statuses is what Cloud Run actually serves; traffic is what was asked.
    source = svc.traffic_statuses or svc.traffic
    shares = tuple(
        TrafficShare(
            revision=t.revision or (latest_ready if t.type_ == latest else ""),
            percent=t.percent,
            latest=t.type_ == latest,
            tag=t.tag,
            uri=getattr(t, "uri", ""),  # statuses have one; asked-for targets do not
        )
        for t in source
    )
    return ServiceState(
        name=_short(svc.name), uri=svc.uri, traffic=shares,
        latest_ready_revision=latest_ready, etag=svc.etag,
    )


class GoogleCloudRun:
    """CloudRun over the real google-cloud-run asyncio clients."""

    def __init__(
        self,
        services: run_v2.ServicesAsyncClient,
        revisions: run_v2.RevisionsAsyncClient,
        project: str,
        policy: RetryPolicy | None = None,
        on_call: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self._services = services
        self._revisions = revisions
        self._project = project
        self._policy = policy or RetryPolicy()
        self._on_call = on_call  # metrics hook: (method, seconds, outcome)
        # WaitOperation through a stub on the client's own (authenticated) channel:
        # the client's wait_operation mixin returns undecoded bytes in
        # google-cloud-run 0.16, and op.result() polls with 1 s+ random backoff.
        channel = services.transport.grpc_channel  # type: ignore[attr-defined]
        self._operations = operations_pb2_grpc.OperationsStub(channel)

    def _service_path(self, service: str, region: str) -> str:
        return f"projects/{self._project}/locations/{region}/services/{service}"

    async def _call(self, method: str, fn: Callable[[], Awaitable[T]]) -> T:
        on_call = self._on_call

        def on_attempt(seconds: float, outcome: str) -> None:
            if on_call:
                on_call(method, seconds, outcome)

        return await call_with_retry(self._policy, fn, "Cloud Run", on_attempt)

    async def _read(self, name: str) -> run_v2.Service:
        """GetService by full name, retried: the raw proto (an update sends it back)."""
        return await self._call(
            "GetService", lambda: self._services.get_service(name=name, retry=None))

    async def get_service(self, service: str, region: str) -> ServiceState:
        return service_from_proto(await self._read(self._service_path(service, region)))

    async def list_revisions(self, service: str, region: str, limit: int = 10) -> list[Revision]:
        parent = self._service_path(service, region)

        async def fetch() -> list[Revision]:
            pager = await self._revisions.list_revisions(
                request=run_v2.ListRevisionsRequest(parent=parent, page_size=limit), retry=None)
            out: list[Revision] = []
            async for rev in pager:
                out.append(revision_from_proto(rev))
                if len(out) >= limit:
                    break
            return out

        revisions = await self._call("ListRevisions", fetch)
        # Newest first, as `gcloud run revisions list` shows them.
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(revisions, key=lambda r: r.created or epoch, reverse=True)

    async def _get_revision(self, service: str, region: str, revision: str) -> run_v2.Revision:
        name = f"{self._service_path(service, region)}/revisions/{revision}"
        return await self._call(
            "GetRevision", lambda: self._revisions.get_revision(name=name, retry=None))

    async def get_revision(self, service: str, region: str, revision: str) -> Revision:
        return revision_from_proto(await self._get_revision(service, region, revision))

    async def get_revision_config(
        self, service: str, region: str, revision: str) -> RevisionConfig:
        return config_from_revision(await self._get_revision(service, region, revision))

    async def read_service(self, service: str, region: str) -> ServiceSnapshot:
        raw = await self._read(self._service_path(service, region))
        return ServiceSnapshot(service_from_proto(raw), config_from_service(raw), raw)

    async def update_service(
        self, snapshot: ServiceSnapshot, *, traffic: Mapping[str, int] | None = None,
        to_latest: bool = False, edit: TemplateEdit | None = None,
        revision_name: str | None = None, labels: Mapping[str, str] | None = None,
        validate_only: bool = False, tags: Mapping[str, str] | None = None,
    ) -> str:
        """Send the service as read in `snapshot`, changed only as asked; return the
        long-running operation's name ("" when `validate_only`).

        `tags` (revision -> tag) go with `traffic`: the tagged revisions get their own
        URL; a tag not given is removed (None or {} alike).

        `edit`, `revision_name` and `labels` change the template, so Cloud Run makes a
        new revision; an edit without a `revision_name` clears the name the template
        was read with (reusing it would be refused as existing). A stale snapshot
        (the service changed since) fails with kind "conflict" and is not retried
        here: the caller re-reads and re-checks."""
        try:
            service = updated_service(snapshot.raw, traffic=traffic, to_latest=to_latest,
                                      edit=edit, revision_name=revision_name, labels=labels,
                                      tags=tags)
        except TemplateEditError as exc:
            raise GoogleCallError("invalid", f"cannot make this change: {exc}") from exc
        request = run_v2.UpdateServiceRequest(service=service, validate_only=validate_only)

        async def submit() -> str:
            operation = await self._services.update_service(request=request, retry=None)
            return "" if validate_only else str(operation.operation.name)

        return await self._call("UpdateService", submit)

    def _wait_once(
        self, request: operations_pb2.WaitOperationRequest, timeout: float
    ) -> Callable[[], Awaitable[operations_pb2.Operation]]:
        async def call() -> operations_pb2.Operation:
            try:
                operation: operations_pb2.Operation = await self._operations.WaitOperation(
                    request, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                raise gexc.from_grpc_error(exc) from exc
            return operation

        return call

    async def wait_operation(self, operation_name: str) -> None:
        """Block on WaitOperation (one RPC per wait, not the client's 1 s+ polling)
        until done, failed, or the policy's operation_timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.operation_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise GoogleCallError(
                    "timeout",
                    f"Cloud Run operation {operation_name} did not finish within "
                    f"{self._policy.operation_timeout:g}s; its outcome is unknown",
                )
            # Each WaitOperation must end within one call's timeout; the loop,
            # bounded by operation_timeout, keeps waiting across calls.
            wait = max(0.05, min(remaining, 10.0, self._policy.call_timeout / 2))
            request = operations_pb2.WaitOperationRequest(
                name=operation_name, timeout=duration_pb2.Duration(
                    seconds=int(wait), nanos=int((wait % 1) * 1e9)))
            try:
                raw = await self._call("WaitOperation", self._wait_once(
                    request, self._policy.call_timeout * 0.9))
            except GoogleCallError as exc:
                if exc.transient:
                    continue  # not done yet, or a blip: the deadline above bounds this
                raise
            if raw.done:
                if raw.HasField("error") and raw.error.code:
                    raise GoogleCallError("error", f"Cloud Run operation {operation_name} "
                                        f"failed: {raw.error.message}")
                return

