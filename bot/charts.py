"""A gradual rollout's chart: the target's 5xx rate and p95 latency beside the revisions
it replaces, over the rollout, as a PNG for the thread.

matplotlib is imported inside `render_gradual_chart` only (the job that draws a chart
pays for it, about 0.5 s and 40 MB the first time; no listener or other job does), and
only through its object API with the Agg canvas: no pyplot global state, so renders
in worker threads never share a figure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

TARGET_COLOUR = "#1f77b4"
REPLACED_COLOUR = "#7f7f7f"
LIMIT_COLOUR = "#d62728"


@dataclasses.dataclass(frozen=True)
class ChartPoint:
    """One analysis. None is a gap (no data), never drawn as zero."""

    at: dt.datetime
    target_error_rate: float | None
    target_p95_ms: float | None
    replaced_error_rate: float | None
    replaced_p95_ms: float | None


def _series(points: Sequence[ChartPoint], field: str, scale: float = 1.0
            ) -> tuple[list[dt.datetime], list[float]]:
    """x and y of a field; a None becomes NaN, which matplotlib leaves as a gap."""
    xs = [p.at for p in points]
    ys = [float("nan") if (v := getattr(p, field)) is None else v * scale for p in points]
    return xs, ys


def render_gradual_chart(points: Sequence[ChartPoint], *, title: str,
                         step_changes: Sequence[dt.datetime] = (),
                         max_error_rate: float | None = None,
                         max_p95_ms: float | None = None) -> bytes:
    """Two panels over time (5xx rate in %, p95 in ms), target vs replaced, with the
    thresholds dashed and each step change marked; PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    errors, latency = figure.subplots(2, 1, sharex=True)
    panels: list[tuple[Any, str, str, str, float, float | None]] = [
        (errors, "target_error_rate", "replaced_error_rate", "5xx rate (%)", 100.0,
         None if max_error_rate is None else max_error_rate * 100),
        (latency, "target_p95_ms", "replaced_p95_ms", "p95 latency (ms)", 1.0, max_p95_ms),
    ]
    for axes, target, replaced, label, scale, limit in panels:
        axes.plot(*_series(points, target, scale), marker="o", color=TARGET_COLOUR,
                  label="target")
        axes.plot(*_series(points, replaced, scale), marker="s", color=REPLACED_COLOUR,
                  label="replaced", linestyle="--")
        if limit is not None:
            axes.axhline(limit, color=LIMIT_COLOUR, linestyle=":", linewidth=1, label="limit")
        for at in step_changes:
            axes.axvline(at, color="#2ca02c", linewidth=1, alpha=0.6)
        axes.set_ylabel(label)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    errors.legend(loc="upper left", fontsize="small")
    errors.set_title(title, fontsize="medium")
    latency.set_xlabel("time (UTC)")
    figure.autofmt_xdate()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
