"""The gradual rollout's chart: a PNG whatever the data (gaps, none, one point), and
matplotlib loaded only by the code that draws it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from bot.changes.rollout import Rollout, RolloutPolicy
from bot.charts import ChartPoint, render_gradual_chart
from bot.workflow.rollout_chart import file_name, points

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def _point(minute: int, rate: float | None, p95: float | None) -> ChartPoint:
    return ChartPoint(T0 + dt.timedelta(minutes=minute), rate, p95, 0.002, 130.0)


def test_a_realistic_rollout_with_gaps_renders() -> None:
    data = [_point(0, 0.001, 120), _point(1, None, None), _point(2, 0.2, 900),
            _point(3, 0.19, None)]
    png = render_gradual_chart(data, title="Gradual rollback of api",
                               step_changes=[T0 + dt.timedelta(minutes=2)],
                               max_error_rate=0.05, max_p95_ms=1000)
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_no_data_one_point_and_all_gaps_still_render() -> None:
    for data in ([], [_point(0, 0.01, 100)], [ChartPoint(T0, None, None, None, None)] * 3):
        assert render_gradual_chart(data, title="x").startswith(PNG_MAGIC)


def test_importing_the_chart_module_does_not_load_matplotlib() -> None:
    code = ("import sys, bot.charts, bot.workflow.rollout_chart, bot.app; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_points_come_from_the_stored_analyses_none_stays_a_gap() -> None:
    rollout = Rollout(RolloutPolicy((50, 100), 300, 60, 2), target="new", before={"old": 100},
                      step=0, seq=3, step_started_at=T0, step_ends_at=None, analyses=(
                          {"at": T0.isoformat(), "target": {"error_rate": 0.01,
                                                            "p95_latency_ms": None},
                           "replaced": {"error_rate": 0.02, "p95_latency_ms": 150.0}},))
    assert points(rollout) == [ChartPoint(T0, 0.01, None, 0.02, 150.0)]
    assert file_name(12, "step1") == "gradual-12-step1.png"
