"""Constants and the run plan shared by every part of rollbot's benchmark.

Paths (the project root, bench/, bench/results/), the names in the emulated world
(the service, its revisions, the incident's requester), the latencies the end-to-end
runs inject, the targets the report checks, and the Plan of a full or a quick run.
Measures nothing itself; bench/run.py and the modules it imports read it from here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"

API = "medicalcor-api"
SERVING = "medicalcor-api-00015-abc"  # what serves in the default (broken) world
TARGETS = ("00014-def", "00013-ghi")  # e2e rollbacks alternate between these
ALICE = {"user_id": "U0ALICE", "channel_id": "C0INCIDENT", "channel_name": "inc-api-outage"}
ACK_TEXTS = ("api 00014-def",)  # the request: a proposal, handed off to a job
CONFIRM = "rollback.confirm"

GOOGLE_LATENCY = 0.05  # GoogleEmulator.faults.latency_all during the end-to-end runs
OPERATION_DELAY = 0.05  # seconds until an UpdateService operation is done
SLACK_LATENCY = 0.05  # the bench-side Slack delay of the second end-to-end series
SCALE_SERVICES = 10  # rollbacks confirmed together in the scale phase

TARGET_ACK_P50_1 = 2.0  # × floor
TARGET_ACK_P99_50 = 1.5  # × floor
TARGET_ACK_MAX_200 = 1.0  # seconds
TARGET_E2E_RATIO = 1.1
TARGET_GRADUAL_ABORT_RATIO = 1.1  # abort → split restored, × the injected waits on the path
TARGET_GRADUAL_LATE_S = 1.0  # each analysis of ten rollouts at once, after its time
TARGET_SCALE_RATIO = 1.2  # median Confirm→traffic of the scale phase, × the lone rollbacks'
TARGET_RSS_MB = 150.0
TARGET_START_S = 2.0


@dataclasses.dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    requests: int  # measured requests per level
    burst: int  # concurrency of the burst phase
    burst_requests: int
    paced_requests: int  # the diagnostic phase: 1 concurrent, PACE s between requests
    rounds: int  # each level in this many rounds, interleaved across the servers
    e2e_runs: int

    def warmup(self, concurrency: int) -> int:
        return max(20, concurrency)


FULL = Plan(levels=(1, 10, 50), requests=1200, burst=200, burst_requests=600,
            paced_requests=100, rounds=12, e2e_runs=5)
QUICK = Plan(levels=(1, 10, 50), requests=60, burst=200, burst_requests=200,
             paced_requests=30, rounds=1, e2e_runs=2)
PACE = 0.03  # seconds between requests of the paced phase: rollbot's jobs keep up
