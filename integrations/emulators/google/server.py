"""GoogleEmulator: one grpc.aio server speaking the real Google APIs over a shared World.

Built from generic handlers over the client libraries' own message types, so
the unmodified GAPIC clients (integrations.gcp.make_google_clients) talk to it
exactly as they would to Google.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.cloud import monitoring_v3, run_v2
from google.cloud import secretmanager_v1 as sm
from google.cloud.logging_v2 import types as logging_types
from google.longrunning import operations_pb2

from ..world import World, default_world
from .cloud_run import CloudRunApi
from .common import EmuError
from .faults import Faults
from .logging_api import LoggingApi
from .methods import (
    ACCESS_SECRET_VERSION,
    DISABLE_SECRET_VERSION,
    ENABLE_SECRET_VERSION,
    GET_OPERATION,
    GET_REVISION,
    GET_SECRET,
    GET_SECRET_VERSION,
    GET_SERVICE,
    LIST_LOG_ENTRIES,
    LIST_REVISIONS,
    LIST_SECRET_VERSIONS,
    LIST_SECRETS,
    LIST_SERVICES,
    UPDATE_SERVICE,
    WAIT_OPERATION,
)
from .monitoring import LIST_TIME_SERIES, MonitoringApi
from .operations import OperationStore
from .secret_manager import SecretManagerApi


@dataclasses.dataclass
class RecordedCall:
    method: str  # "package.Service/Method"
    request: Any  # the deserialized request message
    time: float  # time.monotonic() at arrival
    # The injected latency as applied: (start, end) of the wait, monotonic. A timer
    # overshoots what it was asked for (epoll counts whole milliseconds), and a
    # benchmark comparing its run with the waits it injected needs the real ones.
    waited: tuple[float, float] | None = None
    answered: float | None = None  # monotonic, when the response was handed to gRPC


# (method, request deserializer, response serializer, implementation)
_Route = tuple[str, Callable[[bytes], Any], Callable[[Any], bytes], Callable[[Any], Any]]


class GoogleEmulator:
    """Cloud Run v2, long-running operations, Secret Manager v1, Logging v2 and
    Monitoring v3 (ListTimeSeries) on 127.0.0.1."""

    def __init__(self, world: World | None = None, *, operation_delay: float = 0.05) -> None:
        self.faults = Faults()
        self.calls: list[RecordedCall] = []
        # Seconds until an UpdateService operation reports done (<= 0: done at once).
        self.operation_delay = operation_delay
        # Fault: operations stay not-done forever (checked when each one is due).
        self.operations_never_finish = False
        self._operations = OperationStore(lambda: self.operations_never_finish)
        self._world = world if world is not None else default_world()
        self._run = CloudRunApi(self._world, self._operations, lambda: self.operation_delay)
        self._secrets = SecretManagerApi(self._world)
        self._logging = LoggingApi(self._world)
        self._monitoring = MonitoringApi(self._world)
        self._server: grpc.aio.Server | None = None
        self._address = ""

    @property
    def world(self) -> World:
        return self._world

    @world.setter
    def world(self, world: World) -> None:
        # Swapping the World must reach every API, or they'd keep serving the old one.
        self._world = self._run.world = self._secrets.world = self._logging.world = world
        self._monitoring.world = world

    # --- lifecycle -----------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = grpc.aio.server()
        services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for method, deserialize, serialize, impl in self._routes():
            service, name = method.split("/")
            services.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(
                self._handler(method, impl),
                request_deserializer=deserialize, response_serializer=serialize,
            )
        server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(service, handlers)
            for service, handlers in services.items()
        ))
        bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise RuntimeError(f"could not bind {host}:{port}")
        await server.start()
        self._server = server
        self._address = f"{host}:{bound}"

    @property
    def address(self) -> str:
        """host:port to pass to make_google_clients / ROLLBOT_GCP_EMULATOR_HOST."""
        if not self._address:
            raise RuntimeError("emulator not started")
        return self._address

    async def stop(self) -> None:
        self._operations.close()
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    async def __aenter__(self) -> GoogleEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def operation_timings(self) -> dict[str, tuple[float, float | None]]:
        """Each long-running operation's delay as applied: (start, end), monotonic (end
        None while it waits), for a benchmark's critical path."""
        return self._operations.timings()

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    # --- dispatch ------------------------------------------------------------
    def _handler(self, method: str, impl: Callable[[Any], Any],
                 ) -> Callable[[Any, grpc.aio.ServicerContext], Any]:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = RecordedCall(method, request, time.monotonic())
            self.calls.append(call)
            outcome = self.faults.take(method)
            if outcome.latency > 0:
                await asyncio.sleep(outcome.latency)
                call.waited = (call.time, time.monotonic())
            if outcome.code is not None:
                await context.abort(outcome.code, outcome.message)
            try:
                result = impl(request)
                if inspect.isawaitable(result):
                    result = await result
            except EmuError as exc:
                await context.abort(exc.code, exc.message)
            call.answered = time.monotonic()
            return result

        return handle

    def _routes(self) -> list[_Route]:
        run, sec, log, ops = self._run, self._secrets, self._logging, self._operations
        op_ser = operations_pb2.Operation.SerializeToString
        return [
            (GET_SERVICE, run_v2.GetServiceRequest.deserialize, run_v2.Service.serialize,
             run.get_service),
            (LIST_SERVICES, run_v2.ListServicesRequest.deserialize,
             run_v2.ListServicesResponse.serialize, run.list_services),
            (UPDATE_SERVICE, run_v2.UpdateServiceRequest.deserialize, op_ser,
             run.update_service),
            (GET_REVISION, run_v2.GetRevisionRequest.deserialize, run_v2.Revision.serialize,
             run.get_revision),
            (LIST_REVISIONS, run_v2.ListRevisionsRequest.deserialize,
             run_v2.ListRevisionsResponse.serialize, run.list_revisions),
            (GET_OPERATION, operations_pb2.GetOperationRequest.FromString, op_ser,
             ops.get_operation),
            (WAIT_OPERATION, operations_pb2.WaitOperationRequest.FromString, op_ser,
             ops.wait_operation),
            (LIST_SECRETS, sm.ListSecretsRequest.deserialize, sm.ListSecretsResponse.serialize,
             sec.list_secrets),
            (GET_SECRET, sm.GetSecretRequest.deserialize, sm.Secret.serialize, sec.get_secret),
            (LIST_SECRET_VERSIONS, sm.ListSecretVersionsRequest.deserialize,
             sm.ListSecretVersionsResponse.serialize, sec.list_secret_versions),
            (GET_SECRET_VERSION, sm.GetSecretVersionRequest.deserialize,
             sm.SecretVersion.serialize, sec.get_secret_version),
            (ENABLE_SECRET_VERSION, sm.EnableSecretVersionRequest.deserialize,
             sm.SecretVersion.serialize, sec.enable_secret_version),
            (DISABLE_SECRET_VERSION, sm.DisableSecretVersionRequest.deserialize,
             sm.SecretVersion.serialize, sec.disable_secret_version),
            (ACCESS_SECRET_VERSION, sm.AccessSecretVersionRequest.deserialize,
             sm.AccessSecretVersionResponse.serialize, sec.access_secret_version),
            (LIST_LOG_ENTRIES, logging_types.ListLogEntriesRequest.deserialize,
             logging_types.ListLogEntriesResponse.serialize, log.list_log_entries),
            (LIST_TIME_SERIES, monitoring_v3.ListTimeSeriesRequest.deserialize,
             monitoring_v3.ListTimeSeriesResponse.serialize,
             self._monitoring.list_time_series),
        ]
