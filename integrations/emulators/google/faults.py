"""Fault injection for the Google emulator: failures and latency per gRPC method.

Method names are the full gRPC form, e.g. "google.cloud.run.v2.Services/UpdateService".
"""

from __future__ import annotations

import dataclasses

import grpc


@dataclasses.dataclass
class _Rule:
    code: grpc.StatusCode | None  # None: only latency
    remaining: int  # -1 forever
    latency: float
    message: str


@dataclasses.dataclass(frozen=True)
class FaultOutcome:
    """What to do to one call: wait ``latency`` seconds, then fail with ``code`` if set."""

    latency: float
    code: grpc.StatusCode | None = None
    message: str = ""


class Faults:
    """Failures and delays the emulator applies to incoming calls."""

    def __init__(self) -> None:
        self.latency_all: float = 0.0
        self._failures: dict[str, list[_Rule]] = {}
        self._delays: dict[str, list[_Rule]] = {}

    def inject(self, method: str, code: grpc.StatusCode, *, count: int = 1,
               latency: float = 0.0, message: str = "injected fault") -> None:
        """The next ``count`` calls of ``method`` fail with ``code`` (count=-1: forever)."""
        _check_method(method)
        if code == grpc.StatusCode.OK:
            raise ValueError("inject a failure code, not OK")
        self._failures.setdefault(method, []).append(_Rule(code, count, latency, message))

    def delay(self, method: str, seconds: float, *, count: int = -1) -> None:
        """Add ``seconds`` to the next ``count`` calls of ``method`` without failing them."""
        _check_method(method)
        self._delays.setdefault(method, []).append(_Rule(None, count, seconds, ""))

    def clear(self) -> None:
        self.latency_all = 0.0
        self._failures.clear()
        self._delays.clear()

    def take(self, method: str) -> FaultOutcome:
        """Decide (and consume counts) for one call of ``method``.

        Decided synchronously at arrival so that concurrent calls consume
        counts in arrival order, before anyone sleeps.
        """
        latency = self.latency_all
        for rule in _consume(self._delays, method, first_only=False):
            latency += rule.latency
        for rule in _consume(self._failures, method, first_only=True):
            return FaultOutcome(latency + rule.latency, rule.code, rule.message)
        return FaultOutcome(latency)


def _consume(rules: dict[str, list[_Rule]], method: str, *, first_only: bool) -> list[_Rule]:
    active = rules.get(method, [])
    used: list[_Rule] = []
    for rule in active:
        if rule.remaining == 0:
            continue
        if rule.remaining > 0:
            rule.remaining -= 1
        used.append(rule)
        if first_only:
            break
    rules[method] = [r for r in active if r.remaining != 0]
    return used


def _check_method(method: str) -> None:
    # Catch "UpdateService" or "/google..." early: such a rule would silently never fire.
    if method.startswith("/") or "/" not in method or "." not in method.split("/")[0]:
        raise ValueError(f"method must look like 'package.Service/Method', got {method!r}")
