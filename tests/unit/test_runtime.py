"""The listener's Cloud Run stand-in: `rollbot serve`'s HTTP listener builds no Google
clients, and any call that reaches Cloud Run from it fails loudly instead of quietly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.runtime import ListenerHasNoCloudRun
from integrations.cloud_run import RevisionConfig, ServiceSnapshot, ServiceState

SNAPSHOT = ServiceSnapshot(
    ServiceState("medicalcor-api", "", (), "medicalcor-api-00015-abc"),
    RevisionConfig("", "img", (), (), "", "", 0, 0, "", 0.0, {}, {}), raw=None)

CALLS: list[Callable[[ListenerHasNoCloudRun], Awaitable[Any]]] = [
    lambda c: c.get_service("medicalcor-api", "europe-west3"),
    lambda c: c.list_revisions("medicalcor-api", "europe-west3"),
    lambda c: c.get_revision("medicalcor-api", "europe-west3", "medicalcor-api-00014-def"),
    lambda c: c.read_service("medicalcor-api", "europe-west3"),
    lambda c: c.get_revision_config("medicalcor-api", "europe-west3",
                                    "medicalcor-api-00014-def"),
    lambda c: c.update_service(SNAPSHOT, traffic={"medicalcor-api-00014-def": 100}),
    lambda c: c.wait_operation("projects/p/locations/r/operations/o"),
]


@pytest.mark.parametrize("call", CALLS, ids=["get_service", "list_revisions", "get_revision",
                                             "read_service",
                                             "get_revision_config", "update_service",
                                             "wait_operation"])
async def test_every_cloud_run_call_from_the_listener_is_refused_as_a_bug(
    call: Callable[[ListenerHasNoCloudRun], Awaitable[Any]],
) -> None:
    with pytest.raises(RuntimeError, match="listener does not call Cloud Run"):
        await call(ListenerHasNoCloudRun())
