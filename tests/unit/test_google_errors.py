"""integrations.google_retry.classify: one ladder from Google API errors to GoogleCallError."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from integrations.google_retry import GoogleCallError, classify


@pytest.mark.parametrize(("exc", "kind", "message"), [
    (gexc.NotFound("no such service"), "not_found", "not found: no such service"),
    (gexc.PermissionDenied("run.services.get"), "permission",
     "permission denied: run.services.get"),
    (gexc.Unauthenticated("no token"), "permission", "permission denied: no token"),
    (gexc.Aborted("etag mismatch"), "conflict",
     "the service changed since it was read: etag mismatch"),
    (gexc.AlreadyExists("svc-00002"), "invalid", "already exists: svc-00002"),
    (gexc.InvalidArgument("bad filter"), "invalid", "request refused: bad filter"),
    (gexc.FailedPrecondition("not ready"), "invalid", "request refused: not ready"),
    (gexc.Cancelled("gone"), "error", "Cloud Logging error: gone"),
    (RuntimeError("boom"), "error", "Cloud Logging error: RuntimeError: boom"),
])
def test_refusals_and_errors_are_final(exc: BaseException, kind: str, message: str) -> None:
    got = classify(exc, "Cloud Logging")
    assert (got.kind, got.message, got.transient) == (kind, message, False)
    assert str(got) == message


@pytest.mark.parametrize(("exc", "kind", "message"), [
    (TimeoutError(), "timeout", "Cloud Run did not answer in time"),
    (gexc.DeadlineExceeded("late"), "timeout", "Cloud Run did not answer in time"),
    (gexc.ServiceUnavailable("503"), "unavailable", "Cloud Run unavailable: 503"),
    (gexc.TooManyRequests("slow down"), "unavailable", "Cloud Run unavailable: slow down"),
    (gexc.ResourceExhausted("quota"), "unavailable", "Cloud Run unavailable: quota"),
])
def test_timeouts_and_outages_are_transient(exc: BaseException, kind: str,
                                            message: str) -> None:
    got = classify(exc, "Cloud Run")
    assert (got.kind, got.message, got.transient) == (kind, message, True)


def test_an_already_classified_error_passes_through() -> None:
    original = GoogleCallError("invalid", "empty window")
    assert classify(original, "Cloud Monitoring") is original
