"""kill -9 a worker mid-job: the job is recovered as SPEC §1 says; late writes are refused."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from botyard.jobs import JobStatus, Outcome
from botyard.store.records import Completion, NewJob
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


# -- a job's whole process tree dies with its worker ------------------------------------

GRANDCHILD_JOBS = str(Path(__file__).with_name("grandchild_automations.py"))
TALLY_SCRIPT = str(Path(__file__).with_name("tally_script.py"))
DELAY = 2.5  # the grandchild's side effect comes this long after it starts


def _pid_in(path: Path, system: System) -> int:
    system.wait_for(path.exists, 30, f"{path.name} to be written")
    return int(path.read_text())


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _tally(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _submit_tally_job(store: SqlStore, automation: str, tmp_path: Path, **payload: object) -> int:
    job, _ = store.submit(
        NewJob(
            automation,
            {"tally": str(tmp_path / "tally"), "marker_dir": str(tmp_path), "delay": DELAY}
            | payload,
            idempotent=True,
        )
    )
    return job.id


def _wait_succeeded(system: System, store: SqlStore, job_id: int) -> None:
    system.wait_for(
        lambda: store.get_job(job_id, detail=False).status is JobStatus.SUCCEEDED,
        40,
        "the job to succeed",
    )


def _side_effect_once(system: System, store: SqlStore, tmp_path: Path, job_id: int) -> None:
    """The job succeeds on attempt 2 and the tally holds that attempt's line only, also after
    the first attempt's grandchild would have written."""
    _wait_succeeded(system, store, job_id)
    first = tmp_path / f"{job_id}-1.grandchild"
    time.sleep(max(0.0, first.stat().st_mtime + DELAY + 1.0 - time.time()))
    assert _tally(tmp_path / "tally") == [f"{job_id} 2"]


@pytest.mark.parametrize("daemon", [False, True], ids=["subprocess", "setsid-double-fork"])
def test_kill_9_of_a_worker_kills_what_its_job_started(
    system: System, store_for: SqlStore, tmp_path: Path, daemon: bool
) -> None:
    doomed = system.worker("doomed", "--automations", GRANDCHILD_JOBS)
    job_id = _submit_tally_job(store_for, "crash.tally_by_grandchild", tmp_path, daemon=daemon)
    job_pid = _pid_in(tmp_path / f"{job_id}-1.job", system)
    grandchild = _pid_in(tmp_path / f"{job_id}-1.grandchild", system)

    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    # Before: the grandchild went on and wrote its line, and the retry wrote a second one.
    system.wait_for(lambda: _gone(job_pid) and _gone(grandchild), 2, "the job's tree to die")

    system.worker("rescuer", "--automations", GRANDCHILD_JOBS)
    _side_effect_once(system, store_for, tmp_path, job_id)


def test_kill_9_of_a_worker_kills_what_its_script_started(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    script = ("--script", f"crash.tally_script={TALLY_SCRIPT}")
    doomed = system.worker("doomed", *script)
    job_id = _submit_tally_job(store_for, "crash.tally_script", tmp_path)
    script_pid = _pid_in(tmp_path / f"{job_id}-1.job", system)
    grandchild = _pid_in(tmp_path / f"{job_id}-1.grandchild", system)

    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    system.wait_for(lambda: _gone(script_pid) and _gone(grandchild), 2, "the script's tree to die")

    system.worker("rescuer", *script)
    _side_effect_once(system, store_for, tmp_path, job_id)


def test_a_stopped_workers_job_tree_dies_before_its_lease_expires(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    stopped = system.worker("stopped", "--automations", GRANDCHILD_JOBS)
    job_id = _submit_tally_job(store_for, "crash.tally_by_grandchild", tmp_path)
    job_pid = _pid_in(tmp_path / f"{job_id}-1.job", system)
    grandchild = _pid_in(tmp_path / f"{job_id}-1.grandchild", system)

    os.kill(stopped.pid, signal.SIGSTOP)  # alive, holding its leases, renewing none of them
    try:
        system.wait_for(lambda: _gone(job_pid) and _gone(grandchild), 5, "the tree to die")
        seen_dead_at = datetime.now(UTC)  # at or after the kill
        # Killed by its own supervisor while the lease still held: no one else ran it yet. The
        # lease's end as the store recorded it, against when the test saw the tree dead: not
        # against the time of the store read, which a loaded host may delay past the margin.
        job = store_for.get_job(job_id, detail=False)
        assert job.status is JobStatus.RUNNING and job.attempt == 1
        assert job.lease_expires_at is not None and job.lease_expires_at > seen_dead_at

        system.worker("rescuer", "--automations", GRANDCHILD_JOBS)
        _side_effect_once(system, store_for, tmp_path, job_id)
    finally:
        os.kill(stopped.pid, signal.SIGKILL)
