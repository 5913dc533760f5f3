"""The dashboard's charts: figures from the metrics history, and SVG a screen reader can read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from botyard.dashboard.charts import Point, failure_rate, line_chart, throughput
from botyard.store.maintenance import MetricsSample

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def sample(minute: int, completed: int, failed: int) -> MetricsSample:
    return MetricsSample(T0 + timedelta(minutes=minute), 0, 0, completed, failed, 0, 0, 1)


def test_throughput_is_jobs_finished_per_minute_between_samples() -> None:
    history = [sample(10, 40, 10), sample(0, 0, 0), sample(5, 20, 5)]  # any order

    points = throughput(history)

    assert [(p.at.minute, p.value) for p in points] == [(5, 5.0), (10, 5.0)]


def test_failure_rate_is_the_share_of_finished_jobs_that_failed() -> None:
    history = [sample(0, 0, 0), sample(5, 30, 10), sample(10, 30, 10), sample(15, 40, 10)]

    points = failure_rate(history)

    # No job finished between minutes 5 and 10: no point there rather than a made-up 0 %.
    assert [(p.at.minute, p.value) for p in points] == [(5, 25.0), (15, 0.0)]


def test_counts_going_down_never_give_a_negative_rate() -> None:
    history = [sample(0, 10, 10), sample(5, 10, 4)]  # failed jobs were retried

    assert [p.value for p in throughput(history)] == [0.0]


def test_a_chart_names_its_latest_value_and_summarises_itself() -> None:
    points = [Point(T0, 2.0), Point(T0 + timedelta(minutes=5), 12.0)]

    svg = str(line_chart(points, chart_id="t", title="Throughput", unit="jobs/min"))

    assert 'role="img"' in svg and 'aria-labelledby="t-title t-desc"' in svg
    assert '<title id="t-title">Throughput (jobs/min)</title>' in svg
    assert "latest 12 jobs/min at 12:05 UTC" in svg  # read out instead of the drawing
    assert ">12 jobs/min</text>" in svg  # written at the end of the line: no legend


def test_a_chart_with_too_little_history_says_so() -> None:
    html = str(line_chart([Point(T0, 1.0)], chart_id="t", title="Throughput", unit="jobs/min"))

    assert "<svg" not in html and "not enough history yet" in html


def test_text_in_a_chart_is_escaped() -> None:
    points = [Point(T0, 1.0), Point(T0 + timedelta(minutes=1), 2.0)]

    svg = str(line_chart(points, chart_id="t", title="<b>x</b>", unit="&"))

    assert "<b>" not in svg and "&lt;b&gt;" in svg
