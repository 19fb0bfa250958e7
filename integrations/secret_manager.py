"""Secret Manager: a secret's versions and their states, and enabling or disabling one.

Only what a secret rollback needs (`secretmanager.versions.list/enable/disable`,
`secrets.get`): this client has no way to read a payload (AccessSecretVersion), so
rollbot can never log or post a secret's value. Calls go through the shared
`google_retry` policy; failures are `GoogleCallError`s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from google.cloud import secretmanager_v1 as sm

from integrations.google_retry import RetryPolicy, call_with_retry

T = TypeVar("T")

_STATES = {sm.SecretVersion.State.ENABLED: "enabled",
           sm.SecretVersion.State.DISABLED: "disabled",
           sm.SecretVersion.State.DESTROYED: "destroyed"}


@dataclasses.dataclass(frozen=True)
class SecretVersion:
    version: str  # "5"
    state: str  # enabled | disabled | destroyed
    created: dt.datetime | None

    @property
    def number(self) -> int:
        return int(self.version) if self.version.isdigit() else -1


def newest(versions: list[SecretVersion]) -> SecretVersion | None:
    """What `latest` resolves to: Secret Manager's newest version, whatever its state."""
    return max(versions, key=lambda v: v.number, default=None)


def resolve(version: str, versions: list[SecretVersion]) -> str:
    """A reference's version as a number ("latest" -> the newest one's)."""
    if version != "latest":
        return version
    found = newest(versions)
    return found.version if found else version


class SecretManager(Protocol):
    async def list_versions(self, secret: str) -> list[SecretVersion]:
        """Newest first. GoogleCallError(kind="not_found") for an unknown secret."""
        ...

    async def enable_version(self, secret: str, version: str) -> SecretVersion: ...

    async def disable_version(self, secret: str, version: str) -> SecretVersion: ...


def _version(pb: sm.SecretVersion) -> SecretVersion:
    created = pb.create_time
    return SecretVersion(pb.name.rsplit("/", 1)[-1], _STATES.get(pb.state, "unknown"),
                         created if isinstance(created, dt.datetime) else None)


class GoogleSecretManager:
    """SecretManager over google-cloud-secret-manager's asyncio client."""

    def __init__(self, client: sm.SecretManagerServiceAsyncClient, project: str,
                 policy: RetryPolicy | None = None) -> None:
        self._client = client
        self._project = project
        self._policy = policy or RetryPolicy()

    def _secret(self, secret: str) -> str:
        return f"projects/{self._project}/secrets/{secret}"

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retry(self._policy, fn, "Secret Manager")

    async def list_versions(self, secret: str) -> list[SecretVersion]:
        async def fetch() -> list[SecretVersion]:
            pager = await self._client.list_secret_versions(
                parent=self._secret(secret), retry=None)
            return [_version(v) async for v in pager]
        versions = await self._call(fetch)
        return sorted(versions, key=lambda v: v.number, reverse=True)

    async def enable_version(self, secret: str, version: str) -> SecretVersion:
        name = f"{self._secret(secret)}/versions/{version}"
        return _version(await self._call(
            lambda: self._client.enable_secret_version(name=name, retry=None)))

    async def disable_version(self, secret: str, version: str) -> SecretVersion:
        name = f"{self._secret(secret)}/versions/{version}"
        return _version(await self._call(
            lambda: self._client.disable_secret_version(name=name, retry=None)))
