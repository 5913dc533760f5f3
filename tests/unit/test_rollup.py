"""Seed 002's health indicators: green, yellow and red, with their reasons."""

from __future__ import annotations

import pytest

from botyard.orchestrator.health import Level, Snapshot, averages, rollup


def snap(
    *,
    queued: int = 0,
    succeeded: int = 100,
    failed: int = 0,
    online: int = 1,
    capacity: int = 4,
    active: int = 1,
    scheduler: bool = True,
    store: bool = True,
) -> Snapshot:
    workers = {f"w{i}": "online" for i in range(online)} | {"gone": "offline"}
    return Snapshot(
        store_ok=store,
        counts={"queued": queued},
        finished_last_hour={"succeeded": succeeded, "failed": failed},
        workers=workers,
        capacity=capacity,
        active=active,
        scheduler_running=scheduler,
    )


@pytest.mark.parametrize(
    ("snapshot", "level", "reason"),
    [
        (snap(), Level.GREEN, None),
        (snap(failed=5, succeeded=95), Level.YELLOW, "failure rate 5%"),
        (snap(failed=11, succeeded=89), Level.RED, "failure rate 11%"),
        (snap(queued=19), Level.GREEN, None),
        (snap(queued=20), Level.YELLOW, "20 jobs queued"),
        (snap(queued=51), Level.RED, "51 jobs queued"),
        (snap(active=4, capacity=4), Level.YELLOW, "worker utilisation 100%"),
        (snap(online=0), Level.RED, "no worker online"),
        (snap(scheduler=False), Level.RED, "the scheduler is not running"),
        (snap(store=False), Level.RED, "the store is unreachable"),
    ],
)
def test_thresholds(snapshot: Snapshot, level: Level, reason: str | None) -> None:
    got, reasons = rollup(snapshot)
    assert got is level
    if reason is None:
        assert reasons == []
    else:
        assert any(r.startswith(reason) for r in reasons), reasons


def test_no_finished_jobs_is_no_failure() -> None:
    assert snap(succeeded=0, failed=0).failure_rate == 0.0


def test_averages_over_points() -> None:
    points = [{"a": 1, "b": 10}, {"a": 2, "b": 20}]
    assert averages(points, ("a", "b")) == {"a": 1.5, "b": 15.0}
    assert averages([], ("a",)) == {"a": 0.0}
