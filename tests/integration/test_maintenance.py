"""Maintenance jobs on a real store: leadership, evidence retention, metrics history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from botyard.automations.registry import Registry
from botyard.bus import Bus
from botyard.orchestrator.scheduler import JOBS, LEASE, Maintenance
from botyard.orchestrator.service import JobService
from botyard.settings import Settings
from botyard.store import NewJob, SqlStore
from botyard.store.tables import evidence


def test_one_holder_at_a_time_and_takeover_after_expiry(store: SqlStore) -> None:
    assert store.leases.acquire("x", "a", ttl=0.3)
    assert not store.leases.acquire("x", "b", ttl=0.3)
    first = store.leases.current("x")
    assert first is not None and first.holder == "a"
    assert store.leases.acquire("x", "a", ttl=0.3)  # a renewal keeps the start
    renewed = store.leases.current("x")
    assert renewed is not None and renewed.acquired_at == first.acquired_at
    time.sleep(0.4)
    assert store.leases.acquire("x", "b", ttl=5)
    taken = store.leases.current("x")
    assert taken is not None and taken.holder == "b" and taken.acquired_at > first.acquired_at
    store.leases.release("x", "a")  # not a's any more: nothing happens
    assert not store.leases.acquire("x", "a", ttl=5)
    store.leases.release("x", "b")
    assert store.leases.acquire("x", "a", ttl=5)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BOTYARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BOTYARD_POLL_JOB_QUEUE_SECONDS", "0.3")
    monkeypatch.setenv("BOTYARD_RECOVER_STALE_JOBS_SECONDS", "0.3")
    monkeypatch.setenv("BOTYARD_COLLECT_METRICS_SECONDS", "0.3")
    monkeypatch.setenv("BOTYARD_POLL_WORKER_JOB_STATUS_SECONDS", "0.3")
    monkeypatch.setenv("BOTYARD_LEADER_TTL", "2")
    return Settings()


@pytest.fixture
def replicas(store: SqlStore, bus: Bus, settings: Settings) -> Iterator[list[Maintenance]]:
    service = JobService(store, bus, Registry())
    started: list[Maintenance] = []
    for name in ("replica-a", "replica-b"):
        replica_settings = settings.model_copy(deep=True)
        replica_settings.maintenance.replica_id = name
        maintenance = Maintenance(service, replica_settings)
        maintenance.start()
        started.append(maintenance)
    yield started
    for maintenance in started:
        maintenance.shutdown()


def test_two_replicas_run_each_job_once_per_trigger(
    store: SqlStore, replicas: list[Maintenance]
) -> None:
    time.sleep(2.0)
    a, b = replicas
    assert [a.is_leader, b.is_leader].count(True) == 1
    leader = a if a.is_leader else b
    for job in (
        "poll_job_queue",
        "recover_stale_jobs",
        "collect_metrics",
        "poll_worker_job_status",
    ):
        runs = store.maintenance.runs(job)
        assert runs, job
        assert {r.replica for r in runs} == {leader.replica}, job
        assert all(r.outcome == "ok" for r in runs), runs
        starts = sorted(r.started_at for r in runs)
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(starts)]
        # one run per trigger of the leader: never two runs of a job closer than its interval
        assert all(gap > 0.05 for gap in gaps), (job, gaps)
        assert len(runs) <= 2.0 / 0.3 + 1, (job, len(runs))
    status = leader.status()
    assert status["leader"] == leader.replica and status["job_count"] == len(JOBS)
    assert [j["id"] for j in status["jobs"]] == list(JOBS)


def test_the_other_replica_takes_over_when_the_leader_stops(
    store: SqlStore, replicas: list[Maintenance]
) -> None:
    time.sleep(0.5)
    leader, follower = replicas if replicas[0].is_leader else replicas[::-1]
    leader.shutdown()  # releases the lease: the follower takes over at its next renewal
    deadline = time.monotonic() + 5
    while not follower.is_leader and time.monotonic() < deadline:
        time.sleep(0.05)
    assert follower.is_leader
    current = store.leases.current(LEASE)
    assert current is not None and current.holder == follower.replica
    time.sleep(0.8)
    assert store.maintenance.runs("poll_job_queue")[0].replica == follower.replica


def test_cleanup_old_evidence_deletes_only_inside_the_evidence_folder(
    store: SqlStore, bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    job, _ = store.submit(NewJob("acme.x", {}))
    folder = tmp_path / "evidence" / str(job.id) / "1"
    folder.mkdir(parents=True)
    old_file, new_file = folder / "old.png", folder / "new.png"
    outside = tmp_path / "elsewhere.txt"
    for path in (old_file, new_file, outside):
        path.write_text("x")
    old = datetime.now(UTC) - timedelta(days=31)
    rows = [
        (old_file, old),
        (new_file, datetime.now(UTC)),
        (outside, old),  # a row pointing outside the folder: its file is never touched
    ]
    with store.engine.begin() as conn:
        for path, created in rows:
            conn.execute(
                evidence.insert().values(
                    job_id=job.id,
                    attempt=1,
                    step=None,
                    name=path.name,
                    path=str(path),
                    content_type="image/png",
                    size=1,
                    created_at=created,
                )
            )
    maintenance = Maintenance(JobService(store, bus, Registry()), settings)
    assert maintenance.cleanup_old_evidence() == {"rows": 2, "files": 1}
    assert not old_file.exists() and new_file.exists() and outside.exists()
    assert [e.name for e in store.evidence(job.id)] == ["new.png"]


def test_collect_metrics_keeps_a_history_point(
    store: SqlStore, bus: Bus, settings: Settings
) -> None:
    for _ in range(3):
        store.submit(NewJob("acme.x", {}))
    maintenance = Maintenance(JobService(store, bus, Registry()), settings)
    assert maintenance.collect_metrics()["queued_jobs"] == 3
    point = store.metrics.history()[0]
    assert (point.queued_jobs, point.running_jobs, point.completed_jobs) == (3, 0, 0)
