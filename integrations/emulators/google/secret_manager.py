"""Secret Manager v1: google.cloud.secretmanager.v1.SecretManagerService (read + enable/disable)."""

from __future__ import annotations

import re

import grpc
from google.cloud import secretmanager_v1 as sm

from ..world import EmuSecret, EmuSecretVersion, World
from .common import EmuError, crc32c, invalid, not_found, paginate, stable_uid

_PROJECT_RE = re.compile(r"^projects/([^/]+)$")
_SECRET_RE = re.compile(r"^projects/([^/]+)/secrets/([^/]+)$")
_VERSION_RE = re.compile(r"^projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$")
_STATES = {
    "ENABLED": sm.SecretVersion.State.ENABLED,
    "DISABLED": sm.SecretVersion.State.DISABLED,
    "DESTROYED": sm.SecretVersion.State.DESTROYED,
}


def secret_payload(secret: str, version: str) -> bytes:
    """What AccessSecretVersion returns: fake but predictable, so tests can assert it."""
    return f"emulated-secret-{secret}-{version}".encode()


class SecretManagerApi:
    def __init__(self, world: World) -> None:
        self.world = world

    # --- lookups ---------------------------------------------------------------
    def _check_project(self, project: str) -> None:
        if project != self.world.project:
            raise not_found(f"Project '{project}' not found "
                            f"(this emulator serves project '{self.world.project}').")

    def _secret(self, name: str) -> EmuSecret:
        match = _SECRET_RE.match(name)
        if not match:
            raise invalid(f"Invalid secret name {name!r}: expected projects/{{project}}/"
                          "secrets/{secret}")
        project, short = match.groups()
        self._check_project(project)
        secret = self.world.secrets.get(short)
        if secret is None:
            raise not_found(f"Secret [{name}] not found or has no versions.")
        return secret

    def _version(self, name: str) -> tuple[EmuSecret, EmuSecretVersion]:
        match = _VERSION_RE.match(name)
        if not match:
            raise invalid(f"Invalid secret version name {name!r}: expected "
                          "projects/{project}/secrets/{secret}/versions/{version}")
        project, short, version = match.groups()
        secret = self._secret(f"projects/{project}/secrets/{short}")
        if version == "latest":
            # The alias names the most recently created version, whatever its state.
            if not secret.versions:
                raise not_found(f"Secret [{self.world.secret_name(short)}] has no versions.")
            return secret, max(secret.versions.values(), key=_version_key)
        found = secret.versions.get(version)
        if found is None:
            raise not_found(f"Secret Version [{name}] not found.")
        return secret, found

    # --- messages ------------------------------------------------------------
    def _secret_message(self, secret: EmuSecret) -> sm.Secret:
        name = self.world.secret_name(secret.name)
        return sm.Secret(
            name=name,
            create_time=secret.create_time,
            replication=sm.Replication(automatic=sm.Replication.Automatic()),
            etag=f'"{stable_uid(name)[:16]}"',
        )

    def _version_message(self, secret: EmuSecret, version: EmuSecretVersion) -> sm.SecretVersion:
        name = f"{self.world.secret_name(secret.name)}/versions/{version.version}"
        return sm.SecretVersion(
            name=name,
            create_time=version.create_time,
            state=_STATES[version.state],
            etag=f'"{stable_uid(name + version.state)[:16]}"',
        )

    # --- RPCs ----------------------------------------------------------------
    def list_secrets(self, request: sm.ListSecretsRequest) -> sm.ListSecretsResponse:
        match = _PROJECT_RE.match(request.parent)
        if not match:
            raise invalid(f"Invalid parent {request.parent!r}: expected projects/{{project}}")
        self._check_project(match.group(1))
        if request.filter:
            raise invalid(f"filter {request.filter!r} is not supported by the emulator")
        secrets = [self.world.secrets[k] for k in sorted(self.world.secrets)]
        page, token = paginate(secrets, request.page_size, request.page_token,
                               default_size=25000, max_size=25000)
        return sm.ListSecretsResponse(secrets=[self._secret_message(s) for s in page],
                                      next_page_token=token, total_size=len(secrets))

    def get_secret(self, request: sm.GetSecretRequest) -> sm.Secret:
        return self._secret_message(self._secret(request.name))

    def list_secret_versions(self, request: sm.ListSecretVersionsRequest,
                             ) -> sm.ListSecretVersionsResponse:
        secret = self._secret(request.parent)
        if request.filter:
            raise invalid(f"filter {request.filter!r} is not supported by the emulator")
        newest_first = sorted(secret.versions.values(), key=_version_key, reverse=True)
        page, token = paginate(newest_first, request.page_size, request.page_token,
                               default_size=25000, max_size=25000)
        return sm.ListSecretVersionsResponse(
            versions=[self._version_message(secret, v) for v in page],
            next_page_token=token, total_size=len(newest_first),
        )

    def get_secret_version(self, request: sm.GetSecretVersionRequest) -> sm.SecretVersion:
        return self._version_message(*self._version(request.name))

    def enable_secret_version(self, request: sm.EnableSecretVersionRequest) -> sm.SecretVersion:
        return self._set_state(request.name, "ENABLED")

    def disable_secret_version(self, request: sm.DisableSecretVersionRequest,
                               ) -> sm.SecretVersion:
        return self._set_state(request.name, "DISABLED")

    def _set_state(self, name: str, state: str) -> sm.SecretVersion:
        secret, version = self._version(name)
        if version.state == "DESTROYED":
            raise EmuError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"Secret Version [{name}] is in DESTROYED state.")
        version.state = state  # in place: the World is shared with the other emulators
        return self._version_message(secret, version)

    def access_secret_version(self, request: sm.AccessSecretVersionRequest,
                              ) -> sm.AccessSecretVersionResponse:
        secret, version = self._version(request.name)
        resolved = f"{self.world.secret_name(secret.name)}/versions/{version.version}"
        if version.state != "ENABLED":
            raise EmuError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"Secret Version [{resolved}] is in {version.state} state.")
        data = secret_payload(secret.name, version.version)
        return sm.AccessSecretVersionResponse(
            name=resolved, payload=sm.SecretPayload(data=data, data_crc32c=crc32c(data)),
        )


def _version_key(version: EmuSecretVersion) -> tuple[int, str]:
    return (int(version.version) if version.version.isdigit() else -1, version.version)
