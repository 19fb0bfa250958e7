"""Cloud Run Admin API v2: google.cloud.run.v2.Services and google.cloud.run.v2.Revisions."""

from __future__ import annotations

import datetime as dt
import random
import re
import string
from collections.abc import Callable
from typing import Any

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import message

from ..world import UTC, EmuRevision, EmuService, EmuTrafficTarget, World
from .cloud_run_messages import (
    etag,
    latest_created,
    revision_config,
    revision_message,
    same_template,
    service_message,
    template_message,
)
from .common import EmuError, invalid, not_found, paginate
from .operations import OperationStore

_LOCATION_RE = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")
_SERVICE_RE = re.compile(r"^projects/([^/]+)/locations/([^/]+)/services/([^/]+)$")
_REVISION_RE = re.compile(
    r"^projects/([^/]+)/locations/([^/]+)/services/([^/]+)/revisions/([^/]+)$")
_SEQUENCE_RE = re.compile(r"-(\d{5})-[a-z0-9]+$")
_TAG = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_TYPE = run_v2.TrafficTargetAllocationType


class CloudRunApi:
    """Implements the Services and Revisions RPCs over a World."""

    def __init__(self, world: World, operations: OperationStore,
                 operation_delay: Callable[[], float]) -> None:
        self.world = world
        self._operations = operations
        self._operation_delay = operation_delay
        self._in_flight: dict[str, int] = {}  # service -> updates not yet applied
        self._reserved: set[tuple[str, str]] = set()  # (service, revision) being created

    # --- names ---------------------------------------------------------------
    def _check_location(self, project: str, location: str, *, allow_any: bool = False) -> None:
        if project != self.world.project:
            raise not_found(f"Project '{project}' not found "
                            f"(this emulator serves project '{self.world.project}').")
        if location != self.world.region and not (allow_any and location == "-"):
            raise not_found(f"Location '{location}' not found "
                            f"(services live in '{self.world.region}').")

    def _service(self, name: str) -> EmuService:
        match = _SERVICE_RE.match(name)
        if not match:
            raise invalid(f"Invalid service name {name!r}: expected "
                          "projects/{project}/locations/{location}/services/{service}")
        project, location, short = match.groups()
        self._check_location(project, location)
        svc = self.world.services.get(short)
        if svc is None:
            raise not_found(f"Resource '{short}' of kind 'SERVICE' in region "
                            f"'{location}' in project '{project}' does not exist.")
        return svc

    def _message(self, svc: EmuService) -> run_v2.Service:
        return service_message(self.world, svc, reconciling=self._in_flight.get(svc.name, 0) > 0)

    # --- Services ------------------------------------------------------------
    def get_service(self, request: run_v2.GetServiceRequest) -> run_v2.Service:
        return self._message(self._service(request.name))

    def list_services(self, request: run_v2.ListServicesRequest) -> run_v2.ListServicesResponse:
        match = _LOCATION_RE.match(request.parent)
        if not match:
            raise invalid(f"Invalid parent {request.parent!r}: expected "
                          "projects/{project}/locations/{location}")
        self._check_location(*match.groups(), allow_any=True)
        services = [self.world.services[k] for k in sorted(self.world.services)]
        page, token = paginate(services, request.page_size, request.page_token,
                               default_size=100, max_size=1000)
        return run_v2.ListServicesResponse(services=[self._message(s) for s in page],
                                           next_page_token=token)

    def update_service(self, request: run_v2.UpdateServiceRequest) -> operations_pb2.Operation:
        # Read through the raw protobuf (same field names): proto-plus wraps every field
        # read in Python, which is most of the time an answer takes.
        raw = run_v2.UpdateServiceRequest.pb(request)
        wanted = raw.service
        svc = self._service(wanted.name)
        if wanted.etag and wanted.etag != etag(self.world, svc):
            raise EmuError(grpc.StatusCode.ABORTED,
                           f"etag {wanted.etag} does not match the current one: the service "
                           "changed since it was read; get it again and retry.")
        paths = list(raw.update_mask.paths)
        touch_template = not paths or any(p.split(".")[0] == "template" for p in paths)
        touch_traffic = not paths or "traffic" in paths
        new_rev = self._new_revision(svc, wanted) if touch_template else None
        targets: list[EmuTrafficTarget] | None = None
        if touch_traffic:
            targets = self._validate_traffic(svc, list(wanted.traffic), new_rev)
        location = self.world.location_name
        if raw.validate_only:
            return self._operations.start(location, run_v2.Service.pb(self._message(svc)),
                                          lambda: run_v2.Service.pb(self._message(svc)), 0.0)
        self._in_flight[svc.name] = self._in_flight.get(svc.name, 0) + 1
        if new_rev is not None:
            self._reserved.add((svc.name, new_rev.name))

        def complete() -> message.Message:
            now = dt.datetime.now(UTC)
            if new_rev is not None:
                new_rev.create_time = now
                svc.revisions[new_rev.name] = new_rev
                self._reserved.discard((svc.name, new_rev.name))
            if targets is not None:
                svc.traffic = targets
            svc.generation += 1
            svc.update_time = now
            self._in_flight[svc.name] -= 1
            return run_v2.Service.pb(self._message(svc))

        metadata = run_v2.Service.pb(self._message(svc))
        return self._operations.start(location, metadata, complete, self._operation_delay())

    def _new_revision(self, svc: EmuService, wanted: Any) -> EmuRevision | None:
        """The revision an update creates, or None when the template is the service's own.

        Any field of the template that differs makes a new revision, as does a
        template.revision naming one that does not exist yet (a rename is a change)."""
        template = wanted.template
        if not template.containers or not template.containers[0].image:
            # UpdateService replaces the whole Service unless update_mask says otherwise,
            # so a request without the template is a bug in the caller, not "no change".
            raise invalid("service.template.containers[0].image is required: UpdateService "
                          "replaces the whole Service; get it, change it and send it back, "
                          "or set update_mask to the fields being changed")
        latest = latest_created(svc)
        name = template.revision
        exists = name in svc.revisions or (svc.name, name) in self._reserved
        if latest is not None and same_template(template, template_message(latest)) and (
                not name or exists):
            return None
        if name and exists:
            raise EmuError(grpc.StatusCode.ALREADY_EXISTS,
                           f"Revision named '{name}' already exists; revision names must "
                           "be unique (leave service.template.revision empty for a new name).")
        if name and not name.startswith(f"{svc.name}-"):
            raise invalid(f"service.template.revision must start with '{svc.name}-', "
                          f"got '{name}'")
        rev = EmuRevision(name=name or self._next_revision_name(svc),
                          create_time=dt.datetime.now(UTC), named=bool(name),
                          **revision_config(template))
        if not same_template(template, template_message(rev)):
            raise invalid("service.template sets fields the emulator does not model (it "
                          "keeps image, env, resources.limits, volume mounts, secret "
                          "volumes, scaling, service account, timeout, labels, annotations)")
        self._copy_behaviour(svc, rev, latest)
        return rev

    @staticmethod
    def _copy_behaviour(svc: EmuService, rev: EmuRevision, latest: EmuRevision | None) -> None:
        """How the target app behaves on the new revision: as on the newest revision with
        the same image, else as on the revision it was derived from."""
        same_image = [r for r in svc.revisions.values() if r.image == rev.image]
        source = max(same_image, key=lambda r: r.create_time) if same_image else latest
        if source is not None:
            rev.healthy = source.healthy
            rev.error_rate = source.error_rate
            rev.p95_latency_ms = source.p95_latency_ms

    def _next_revision_name(self, svc: EmuService) -> str:
        taken = set(svc.revisions) | {rev for s, rev in self._reserved if s == svc.name}
        numbers = [int(m.group(1)) for n in taken if (m := _SEQUENCE_RE.search(n))]
        seq = max(numbers, default=0) + 1
        while True:
            suffix = "".join(random.choices(string.ascii_lowercase, k=3))
            name = f"{svc.name}-{seq:05d}-{suffix}"
            if name not in taken:
                return name

    def _validate_traffic(self, svc: EmuService, traffic: list[Any],
                          new_rev: EmuRevision | None) -> list[EmuTrafficTarget]:
        if not traffic:  # documented default: 100% to the latest ready revision
            return [EmuTrafficTarget(revision=None, percent=100, latest=True)]
        known = dict(svc.revisions)
        if new_rev is not None:
            known[new_rev.name] = new_rev
        out: list[EmuTrafficTarget] = []
        for i, target in enumerate(traffic):
            where = f"service.traffic[{i}]"
            if not 0 <= target.percent <= 100:
                raise invalid(f"{where}.percent must be between 0 and 100, got {target.percent}")
            if target.type_ == _TYPE.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST:
                if target.revision:
                    raise invalid(f"{where}.revision must be empty when type is "
                                  "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST")
                out.append(EmuTrafficTarget(None, target.percent, latest=True, tag=target.tag))
                continue
            if target.type_ != _TYPE.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION:
                raise invalid(f"{where}.type must be TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION "
                              "or TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST")
            rev = known.get(target.revision)
            if rev is None:
                hint = " (use the short revision name)" if "/" in target.revision else ""
                raise invalid(f"{where}: Revision '{target.revision}' does not exist "
                              f"for service '{svc.name}'{hint}.")
            if target.percent > 0 and not rev.ready:
                raise EmuError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"Revision '{rev.name}' is not ready and cannot serve traffic.")
            out.append(EmuTrafficTarget(rev.name, target.percent, tag=target.tag))
        tags = [t.tag for t in out if t.tag]
        for tag in tags:
            if not _TAG.match(tag):
                raise invalid(f"Traffic tag '{tag}' must be lowercase letters, digits and "
                              "hyphens, starting with a letter.")
            if len(tag) + len(svc.name) > 46:
                raise invalid("Combined traffic tag and service name cannot exceed 46 "
                              f"characters: '{tag}' with '{svc.name}'.")
        if len(set(tags)) != len(tags):
            raise invalid("Traffic tags must be unique: "
                          f"{sorted({t for t in tags if tags.count(t) > 1})}.")
        total = sum(t.percent for t in out)
        if total != 100:
            raise invalid(f"Traffic percents must add up to 100, got {total}.")
        return out

    # --- Revisions -----------------------------------------------------------
    def get_revision(self, request: run_v2.GetRevisionRequest) -> run_v2.Revision:
        match = _REVISION_RE.match(request.name)
        if not match:
            raise invalid(f"Invalid revision name {request.name!r}: expected "
                          "projects/{project}/locations/{location}/services/{service}"
                          "/revisions/{revision}")
        project, location, service, short = match.groups()
        svc = self._service(f"projects/{project}/locations/{location}/services/{service}")
        rev = svc.revisions.get(short)
        if rev is None:
            raise not_found(f"Resource '{short}' of kind 'REVISION' in region '{location}' "
                            f"in project '{project}' does not exist.")
        return revision_message(self.world, svc, rev)

    def list_revisions(self, request: run_v2.ListRevisionsRequest,
                       ) -> run_v2.ListRevisionsResponse:
        svc = self._service(request.parent)
        newest_first = sorted(svc.revisions.values(), key=lambda r: r.create_time, reverse=True)
        page, token = paginate(newest_first, request.page_size, request.page_token,
                               default_size=100, max_size=1000)
        return run_v2.ListRevisionsResponse(
            revisions=[revision_message(self.world, svc, r) for r in page],
            next_page_token=token,
        )
