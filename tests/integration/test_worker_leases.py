"""Leases seen from the worker: a renewal that overlaps the end of an attempt costs nothing,
and the fence that kills a job whose lease was not renewed spares healthy and idle ones.

The keeper renews a snapshot of the held attempts. When one of them finishes while the store
call is under way, the store no longer counts it as running; that is the attempt's end, not a
lost lease, and the job's next attempt must run here like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from botyard.bus import Bus
from botyard.jobs import JobStatus, Outcome
from botyard.store import NewJob, SqlStore
from botyard.worker import PullWorker, WorkerConfig

AUTOMATIONS = str(Path(__file__).with_name("racing_automations.py"))
TEST_AUTOMATIONS = str(Path(__file__).parents[1] / "automations_for_tests.py")


class RenewalAfterFinish:
    """``renew_leases`` that, once, holds a call naming ``job_id``'s first attempt until the
    store has closed that attempt: the interleaving the race needs, every time."""

    def __init__(self, store: SqlStore, job_id: int) -> None:
        self.store = store
        self.job_id = job_id
        self.renew = store.renew_leases
        self.raced = threading.Event()

    def __call__(
        self, worker_id: str, held: Iterable[tuple[int, int]], lease_ttl: float
    ) -> set[tuple[int, int]]:
        held = list(held)
        if (self.job_id, 1) in held and not self.raced.is_set():
            deadline = time.monotonic() + 10
            while self._first_attempt_runs() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.raced.set()
        return self.renew(worker_id, held, lease_ttl)

    def _first_attempt_runs(self) -> bool:
        job = self.store.get_job(self.job_id, detail=False)
        return job.attempt == 1 and job.status is JobStatus.RUNNING


def _start(
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    automations: tuple[str, ...] = ("race.slow_then_flaky",),
    lease_ttl: float = 3.0,  # renewals every second
) -> tuple[PullWorker, threading.Thread]:
    config = WorkerConfig(
        automations=list(automations),
        modules=[AUTOMATIONS, TEST_AUTOMATIONS],
        worker_id="racer",
        concurrency=1,
        lease_ttl=lease_ttl,
        recover_interval=0.3,
        poll_interval=0.3,
        heartbeat_interval=0.5,
        shutdown_grace=0.0,
        data_dir=tmp_path / "data",
    )
    worker = PullWorker(store, bus, config)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    return worker, thread


def test_an_attempt_that_ends_during_a_renewal_does_not_cost_the_next_one(
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job, _ = store.submit(NewJob("race.slow_then_flaky", {"seconds": 1.5}, max_attempts=2))
    racing = RenewalAfterFinish(store, job.id)
    monkeypatch.setattr(store, "renew_leases", racing)
    caplog.set_level(logging.INFO, logger="botyard.worker")
    worker, thread = _start(store, bus, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while store.get_job(job.id).status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            assert time.monotonic() < deadline, "the job did not settle"
            time.sleep(0.05)
    finally:
        worker.stop(0)
        thread.join(10)
    assert racing.raced.is_set(), "no renewal overlapped the first attempt's end"
    settled = store.get_job(job.id)
    # Before: attempt 2 was claimed and never started, and the job failed with LeaseExpired.
    assert [(a.number, a.outcome) for a in settled.attempts] == [
        (1, Outcome.ERROR.value),
        (2, Outcome.SUCCEEDED.value),
    ]
    assert settled.status is JobStatus.SUCCEEDED
    assert not [r for r in caplog.records if "lost its lease" in r.getMessage()]


def test_an_idle_job_process_outlives_many_lease_lengths_and_runs_the_next_job(
    store: SqlStore, bus: Bus, tmp_path: Path
) -> None:
    worker, thread = _start(store, bus, tmp_path, ("tests.slow",), lease_ttl=1.0)
    try:
        pids = []
        for n in range(2):
            pid_file = tmp_path / f"pid-{n}"
            job, _ = store.submit(NewJob("tests.slow", {"seconds": 2.0, "pid_file": str(pid_file)}))
            deadline = time.monotonic() + 30
            while store.get_job(job.id, detail=False).status is not JobStatus.SUCCEEDED:
                assert time.monotonic() < deadline, "the job did not succeed"
                time.sleep(0.05)
            # Two lease lengths of running, renewed: one attempt, never fenced.
            assert [a.outcome for a in store.get_job(job.id).attempts] == ["succeeded"]
            pids.append(int(pid_file.read_text()))
            time.sleep(3.0)  # idle for three lease lengths: no job, nothing to fence
        assert pids[0] == pids[1]
    finally:
        worker.stop(0)
        thread.join(10)


def test_renewals_do_not_wait_behind_a_slow_host_sweep(
    store: SqlStore, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep of the host that takes longer than a lease (a host with many processes) holds
    up no renewal: the job runs to its end, never fenced."""
    swept = threading.Event()

    def slow_sweep() -> None:
        swept.set()
        time.sleep(2.5)

    # The rounds' first host sweep would come 30 s after start: have it come at once, and slow.
    monkeypatch.setattr("botyard.worker.upkeep.HOST_SWEEP_INTERVAL", 0.0)
    monkeypatch.setattr("botyard.worker.upkeep.Upkeep.sweep_host", lambda _self: slow_sweep())
    worker, thread = _start(store, bus, tmp_path, ("tests.slow",), lease_ttl=1.0)
    try:
        job, _ = store.submit(NewJob("tests.slow", {"seconds": 2.0}, max_attempts=1))
        deadline = time.monotonic() + 30
        while store.get_job(job.id, detail=False).status not in (
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
        ):
            assert time.monotonic() < deadline, "the job did not settle"
            time.sleep(0.05)
    finally:
        worker.stop(0)
        thread.join(10)
    assert swept.is_set()
    # Before: the keeper swept between renewals, the fence (0.75 s) passed, the tree was killed.
    assert [a.outcome for a in store.get_job(job.id).attempts] == [Outcome.SUCCEEDED.value]
