"""SIGTERM with running jobs: running ones finish (or go back) and nothing is lost."""

from __future__ import annotations

import signal
from pathlib import Path

from botyard.jobs import JobStatus
from botyard.store.records import JobFilter
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System


def test_sigterm_lets_running_jobs_finish(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    system.server()
    worker = system.worker("graceful", "-c", "2")
    ids = [
        system.submit("accept.sleepy", {"seconds": 1.5, "marker_dir": str(tmp_path)})
        for _ in range(6)
    ]
    system.wait_for(lambda: len(list(tmp_path.glob("*.started"))) >= 2, 30, "two jobs running")

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    jobs = [store_for.get_job(i) for i in ids]
    statuses = sorted(j.status.value for j in jobs)
    # The two that were running finished inside the grace period; the rest were never started.
    assert statuses.count("succeeded") == 2 and statuses.count("queued") == 4, statuses
    assert all(j.attempt == 1 for j in jobs if j.status is JobStatus.SUCCEEDED)

    system.worker("after", "-c", "4")
    system.wait_for(
        lambda: store_for.counts_by_status()[JobStatus.SUCCEEDED] == 6, 30, "all six done"
    )
    done, _ = store_for.list_jobs(JobFilter(status=JobStatus.SUCCEEDED), limit=10)
    assert {j.id for j in done} == set(ids)


def test_sigterm_past_grace_hands_running_jobs_back(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    system.env["BOTYARD_WORKER_SHUTDOWN_GRACE"] = "0.5"
    system.server()
    worker = system.worker("impatient", "-c", "1")
    job_id = system.submit("accept.sleepy", {"seconds": 30, "marker_dir": str(tmp_path)})
    system.wait_for(lambda: (tmp_path / f"{job_id}-1.started").exists(), 30, "the job to start")

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    job = store_for.get_job(job_id)
    assert job.status is JobStatus.QUEUED  # released, not lost and not failed
    assert job.attempts[0].outcome == "released"
