"""What an attempt that ends on its own leaves behind, and how its end is told apart from a
fence: real worker processes, real job processes."""

from __future__ import annotations

from pathlib import Path

import psutil

from botyard.jobs import JobStatus, Outcome
from botyard.store.records import NewJob
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System

GRANDCHILD_JOBS = str(Path(__file__).with_name("grandchild_automations.py"))


def _ended(store: SqlStore, job_id: int) -> bool:
    return store.get_job(job_id, detail=False).status in (JobStatus.SUCCEEDED, JobStatus.FAILED)


def test_a_failed_attempt_leaves_nothing_running_beside_its_retry(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    system.worker("w1", "--automations", GRANDCHILD_JOBS)
    job, _ = store_for.submit(
        NewJob("crash.leaves_a_process", {"marker_dir": str(tmp_path)}, max_attempts=2)
    )
    system.wait_for(lambda: _ended(store_for, job.id), 60, "the job to end")

    done = store_for.get_job(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.attempt == 2
    assert done.attempts[0].outcome == Outcome.ERROR.value
    # Before: attempt 1's `sleep 300` ran on beside attempt 2 (and after it).
    assert done.result == {"left_running": False}
    pid = int((tmp_path / f"{job.id}-1.grandchild").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_jobs_own_exit_code_75_is_its_crash_not_a_lost_lease(
    system: System, store_for: SqlStore
) -> None:
    system.worker("w1", "--automations", GRANDCHILD_JOBS)
    job, _ = store_for.submit(NewJob("crash.exits_75", {}, max_attempts=1))
    system.wait_for(lambda: _ended(store_for, job.id), 60, "the job to end")

    done = store_for.get_job(job.id)
    # Before: lease_expired (75 was the supervisor's 'fenced'), requeued without backoff.
    assert done.status is JobStatus.FAILED and done.attempt == 1
    assert done.attempts[0].outcome == Outcome.CRASHED.value
    assert done.error is not None and "exited with code 75" in done.error["message"]
