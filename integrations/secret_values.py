"""Reads the value of a secret that configures rollbot itself: the application's flag
admin-API key, when the catalog names it as a Secret Manager secret version
(`api_key_secret`). The only AccessSecretVersion rollbot makes; the application's
secrets that `/rollback secret` rolls back are never read (integrations/secret_manager.py
has no such call). IAM: `secretAccessor` on that one secret.
"""

from __future__ import annotations

import time

from google.cloud import secretmanager_v1 as sm

from integrations.google_retry import RetryPolicy, call_with_retry

CACHE_SECONDS = 300.0  # a key rotated in Secret Manager is picked up within 5 minutes


class SecretValues:
    def __init__(self, client: sm.SecretManagerServiceAsyncClient,
                 policy: RetryPolicy | None = None) -> None:
        self._client = client
        self._policy = policy or RetryPolicy()
        self._cache: dict[str, tuple[float, str]] = {}

    async def read(self, name: str) -> str:
        """`projects/P/secrets/S/versions/V`'s value (UTF-8). Raises GoogleCallError."""
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        answer = await call_with_retry(
            self._policy, lambda: self._client.access_secret_version(name=name, retry=None),
            "Secret Manager")
        value = answer.payload.data.decode("utf-8")
        self._cache[name] = (time.monotonic(), value)
        return value
