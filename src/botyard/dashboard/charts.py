"""Charts drawn on the server as SVG: no JavaScript library, readable without a legend.

Each chart has one series. Its title says what it shows and in which unit, the latest value is
written at the end of the line, and the SVG carries a text summary (``<title>``/``<desc>``)
that a screen reader reads instead of the drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from markupsafe import Markup, escape

from botyard.store.maintenance import MetricsSample


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    value: float


def throughput(history: Sequence[MetricsSample]) -> list[Point]:
    """Jobs finished (succeeded or failed) per minute between consecutive samples."""
    points = []
    ordered = sorted(history, key=lambda s: s.at)
    for before, after in pairwise(ordered):
        minutes = (after.at - before.at).total_seconds() / 60
        if minutes <= 0:
            continue
        done = (after.completed_jobs + after.failed_jobs) - (
            before.completed_jobs + before.failed_jobs
        )
        points.append(Point(after.at, max(0, done) / minutes))
    return points


def failure_rate(history: Sequence[MetricsSample]) -> list[Point]:
    """The share of finished jobs that failed between consecutive samples, in percent."""
    points = []
    ordered = sorted(history, key=lambda s: s.at)
    for before, after in pairwise(ordered):
        failed = max(0, after.failed_jobs - before.failed_jobs)
        succeeded = max(0, after.completed_jobs - before.completed_jobs)
        if failed + succeeded:
            points.append(Point(after.at, 100 * failed / (failed + succeeded)))
    return points


def line_chart(
    points: Sequence[Point],
    *,
    chart_id: str,
    title: str,
    unit: str,
    fixed_max: float | None = None,
    width: int = 560,
    height: int = 170,
) -> Markup:
    """An SVG line chart of ``points`` (oldest first), or a sentence when there are too few."""
    if len(points) < 2:
        return Markup(
            '<p class="chart-empty">{}: not enough history yet. A point is added at every '
            "<code>collect_metrics</code> run.</p>"
        ).format(title)
    left, right, top, bottom = 44, 104, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(p.value for p in points)
    y_max = fixed_max if fixed_max is not None else _nice(peak)
    start, end = points[0].at, points[-1].at
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return left + plot_w * (at - start).total_seconds() / span

    def y(value: float) -> float:
        return top + plot_h * (1 - min(value, y_max) / y_max if y_max else 1)

    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(p.at):.1f},{y(p.value):.1f}" for i, p in enumerate(points)
    )
    last = points[-1]
    peak_point = max(points, key=lambda p: p.value)
    summary = (
        f"{title}: latest {_fmt(last.value)} {unit} at {last.at:%H:%M} UTC; highest "
        f"{_fmt(peak_point.value)} {unit} at {peak_point.at:%H:%M}; {len(points)} points from "
        f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC."
    )
    grid = []
    for fraction in (0.0, 0.5, 1.0):
        value = y_max * fraction
        gy = y(value)
        grid.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(_fmt(value))}</text>"
        )
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{escape(title)} ({escape(unit)})</title>'
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>'
        + "".join(grid)
        + f'<text class="axis" x="{left}" y="{height - 6}">{start:%H:%M}</text>'
        f'<text class="axis" x="{left + plot_w}" y="{height - 6}" text-anchor="end">'
        f"{end:%H:%M} UTC</text>"
        f'<path class="line" d="{path}"/>'
        f'<circle class="dot" cx="{x(last.at):.1f}" cy="{y(last.value):.1f}" r="3.5"/>'
        f'<text class="label" x="{x(last.at) + 8:.1f}" y="{y(last.value) + 4:.1f}">'
        f"{escape(_fmt(last.value))} {escape(unit)}</text>"
        "</svg>"
    )
    return Markup(svg)


def _nice(peak: float) -> float:
    """A round axis maximum at or above ``peak``."""
    if peak <= 0:
        return 1.0
    step = 10 ** len(str(int(peak))) / 10 if peak >= 1 else 0.1
    for multiple in (1, 2, 2.5, 5, 10):
        if multiple * step >= peak:
            return multiple * step
    return 10 * step


def _fmt(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}"
