"""The Google API clients the bot uses: real endpoints, or the emulator when one is named.

``ROLLBOT_GCP_EMULATOR_HOST`` ("127.0.0.1:PORT") follows Google's own
PUBSUB_EMULATOR_HOST convention: when set, every client shares one insecure
gRPC channel to the emulator and no credentials are looked up. The clients are
the unmodified asyncio GAPIC clients either way.
"""

from __future__ import annotations

import dataclasses
import os

import grpc
from google.cloud import monitoring_v3, run_v2, secretmanager_v1
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2AsyncClient
from google.cloud.logging_v2.services.logging_service_v2.transports import (
    LoggingServiceV2GrpcAsyncIOTransport,
)
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcAsyncIOTransport,
)
from google.cloud.run_v2.services.revisions.transports import RevisionsGrpcAsyncIOTransport
from google.cloud.run_v2.services.services.transports import ServicesGrpcAsyncIOTransport
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
)

EMULATOR_HOST_ENV = "ROLLBOT_GCP_EMULATOR_HOST"


@dataclasses.dataclass
class GoogleClients:
    """The asyncio GAPIC clients, built together so they can be closed together.

    To add a client: add a field here, one line in each branch of
    make_google_clients, and one entry in close().
    """

    services: run_v2.ServicesAsyncClient
    revisions: run_v2.RevisionsAsyncClient
    secrets: secretmanager_v1.SecretManagerServiceAsyncClient
    logging: LoggingServiceV2AsyncClient
    monitoring: monitoring_v3.MetricServiceAsyncClient
    # The emulator channel the clients share; None when each owns its own.
    channel: grpc.aio.Channel | None = None

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            return
        for client in (self.services, self.revisions, self.secrets, self.logging,
                       self.monitoring):
            await client.transport.close()


def emulator_host_from_env() -> str | None:
    return os.environ.get(EMULATOR_HOST_ENV) or None


def make_google_clients(emulator_host: str | None) -> GoogleClients:
    """Build the clients; call inside a running event loop (grpc.aio binds to it)."""
    if not emulator_host:
        # Real endpoints, Application Default Credentials.
        return GoogleClients(
            services=run_v2.ServicesAsyncClient(),
            revisions=run_v2.RevisionsAsyncClient(),
            secrets=secretmanager_v1.SecretManagerServiceAsyncClient(),
            logging=LoggingServiceV2AsyncClient(),
            monitoring=monitoring_v3.MetricServiceAsyncClient(),
        )
    # A transport given a ready channel skips credential lookup entirely.
    channel = grpc.aio.insecure_channel(emulator_host)
    return GoogleClients(
        services=run_v2.ServicesAsyncClient(
            transport=ServicesGrpcAsyncIOTransport(channel=channel)),
        revisions=run_v2.RevisionsAsyncClient(
            transport=RevisionsGrpcAsyncIOTransport(channel=channel)),
        secrets=secretmanager_v1.SecretManagerServiceAsyncClient(
            transport=SecretManagerServiceGrpcAsyncIOTransport(channel=channel)),
        logging=LoggingServiceV2AsyncClient(
            transport=LoggingServiceV2GrpcAsyncIOTransport(channel=channel)),
        monitoring=monitoring_v3.MetricServiceAsyncClient(
            transport=MetricServiceGrpcAsyncIOTransport(channel=channel)),
        channel=channel,
    )
