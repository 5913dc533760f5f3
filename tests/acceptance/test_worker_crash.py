"""kill -9 a worker mid-job: the job is recovered as SPEC §1 says; late writes are refused."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from botyard.jobs import JobStatus, Outcome
from botyard.store.records import Completion
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System


def _children(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_killed_worker_job_is_requeued_and_runs_again(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    system.server()
    first = system.worker("crashy")
    job_id = system.submit("accept.sleepy", {"seconds": 60, "marker_dir": str(tmp_path)})
    system.wait_for(lambda: (tmp_path / f"{job_id}-1.started").exists(), 30, "attempt 1 to start")
    orphans = _children(first.pid)

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    # The worker's children die with it: nobody runs the job without a lease.
    psutil.wait_procs(orphans, timeout=5)
    assert not [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    system.worker("rescuer")
    system.wait_for(lambda: system.job(job_id)["attempt"] == 2, 30, "the job to be claimed again")
    recovered_after = time.monotonic() - killed_at
    # lease TTL (2 s) + one sweep (0.5 s), plus process start-up and scheduling slack
    assert recovered_after < 2 + 0.5 + 5

    # The killed attempt's late write changes nothing.
    late = Completion(
        job_id, 1, Outcome.SUCCEEDED, max_attempts=3, idempotent=False, result={"late": True}
    )
    assert store_for.finish([late]) == [None]
    job = store_for.get_job(job_id)
    assert job.status is JobStatus.RUNNING and job.attempt == 2
    assert job.attempts[0].outcome == Outcome.LEASE_EXPIRED.value


def test_killed_worker_after_side_effect_goes_to_review(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    system.server()
    worker = system.worker("doomed")
    job_id = system.submit("accept.cancel_circuit", {"marker_dir": str(tmp_path)})
    system.wait_for(lambda: (tmp_path / f"{job_id}-1.side_effect").exists(), 30, "the side effect")

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    system.wait_for(lambda: system.job(job_id)["status"] == "needs_review", 15, "needs_review")
    job = system.job(job_id)
    assert job["attempt"] == 1 and job["side_effect"] == "cancel circuit"
    assert not (tmp_path / f"{job_id}-2.side_effect").exists()  # never silently run again
