"""The pull worker end to end: a real store, a real bus, real child processes.

Every test runs twice per store: with jobs announced on the store's bus, and with Redis
dispatch (entries on Redis lists taken with BLMOVE). The behaviour must be the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from botyard.automations import load_automations
from botyard.bus.wakeups import Wakeups
from botyard.jobs import JobStatus, Outcome
from botyard.store import JobRecord, NewJob, SqlStore
from botyard.worker import PullWorker, WorkerConfig

AUTOMATIONS = str(Path(__file__).resolve().parent.parent / "automations_for_tests.py")
SETTLED = {
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.NEEDS_REVIEW,
}


@pytest.fixture(scope="module")
def automation_names() -> list[str]:
    """The names the test module registers (loaded here the same way the children load it)."""
    names = [n for n in load_automations([AUTOMATIONS]).names() if n.startswith("tests.")]
    assert "tests.ok" in names
    return names


@dataclass
class RunningWorker:
    worker: PullWorker
    thread: threading.Thread

    @property
    def id(self) -> str:
        return self.worker.config.worker_id

    def stop(self, grace: float | None = None, timeout: float = 30.0) -> float:
        """Stop the worker and wait for its thread; returns how long that took."""
        started = time.monotonic()
        self.worker.stop(grace)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        return time.monotonic() - started


StartWorker = Callable[..., RunningWorker]


@pytest.fixture
def start_worker(
    store: SqlStore, wakeups: Wakeups, tmp_path: Path, automation_names: list[str]
) -> Iterator[StartWorker]:
    started: list[RunningWorker] = []

    def start(**overrides: Any) -> RunningWorker:
        settings: dict[str, Any] = {
            "automations": automation_names,
            "modules": [AUTOMATIONS],
            "worker_id": f"test-worker-{len(started)}",
            "concurrency": 1,
            "lease_ttl": 5.0,
            "recover_interval": 0.5,
            "poll_interval": 0.5,
            "heartbeat_interval": 0.5,
            "shutdown_grace": 5.0,
            "data_dir": tmp_path / "data",
        }
        settings.update(overrides)
        worker = PullWorker(store, wakeups.bus, WorkerConfig(**settings), lists=wakeups.lists)
        thread = threading.Thread(
            target=worker.run, kwargs={"install_signals": False}, name="test-worker"
        )
        thread.start()
        running = RunningWorker(worker, thread)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop(grace=0)


def submit(
    store: SqlStore, wakeups: Wakeups, automation: str, payload: dict[str, Any], **kw: Any
) -> int:
    """Submit like the API does: store the job, then tell the workers of its queue."""
    job, _ = store.submit(NewJob(automation=automation, payload=payload, **kw))
    wakeups.jobs(job.queue, [job.id])
    return job.id


def settled(store: SqlStore, job_id: int) -> Callable[[], JobRecord | None]:
    def check() -> JobRecord | None:
        job = store.get_job(job_id)
        return job if job.status in SETTLED else None

    return check


def wait_settled(store: SqlStore, job_id: int, wait_until: Any, timeout: float = 20) -> JobRecord:
    wait_until(settled(store, job_id), timeout=timeout)
    return store.get_job(job_id)


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def read_pids(path: Path, wait_until: Any) -> list[int]:
    wait_until(path.exists, timeout=20)
    return [int(p) for p in path.read_text().split()]


# -- outcomes ----------------------------------------------------------------------


def test_a_job_succeeds_with_its_result_and_logs(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any, tmp_path: Path
) -> None:
    worker = start_worker()

    job_id = submit(store, wakeups, "tests.ok", {"name": "ann", "lines": 3})

    job = wait_settled(store, job_id, wait_until)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == {"greeting": "hello ann", "attempt": 1}
    assert job.worker_id == worker.id
    assert [(a.number, a.outcome) for a in job.attempts] == [(1, Outcome.SUCCEEDED.value)]
    assert [(s.name, s.status) for s in job.steps] == [("greet", "done")]
    assert [line.message for line in store.logs(job_id)] == [
        "hello ann #0",
        "hello ann #1",
        "hello ann #2",
        "printed for ann",
    ]
    [evidence] = store.evidence(job_id)
    assert (evidence.name, evidence.step, evidence.attempt) == ("greeting.txt", "greet", 1)
    assert Path(evidence.path).read_text() == "hello ann"
    assert Path(evidence.path).is_relative_to(tmp_path / "data" / "evidence" / str(job_id))


def test_reports_no_column_can_hold_are_stored_as_well_as_they_can_be(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    """A NUL, a lone surrogate or an over-long name from a job: a write the store refuses would
    be retried for good, holding up every later write of the worker (its next job too)."""
    start_worker()

    job_id = submit(store, wakeups, "tests.unstorable_reports", {})
    job = wait_settled(store, job_id, wait_until)
    next_id = submit(store, wakeups, "tests.ok", {"name": "bo"})
    next_job = wait_settled(store, next_id, wait_until)

    assert job.status is JobStatus.SUCCEEDED
    assert job.result == {"note": "half an emoji \ufffd"}
    assert [line.message for line in store.logs(job_id)] == [
        "a NUL \ufffd and half an emoji \ufffd"
    ]
    assert [(len(s.name), s.status) for s in job.steps] == [(200, "done"), (200, "done")]
    assert job.side_effect == "x" * 200
    [evidence] = store.evidence(job_id)
    assert Path(evidence.path).read_text() == "evidence"
    assert next_job.status is JobStatus.SUCCEEDED


def test_an_error_is_retried_then_succeeds(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    start_worker()

    job_id = submit(store, wakeups, "tests.flaky", {"fail_times": 1}, max_attempts=3)

    job = wait_settled(store, job_id, wait_until)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == {"attempt": 2}
    assert [(a.number, a.outcome) for a in job.attempts] == [
        (1, Outcome.ERROR.value),
        (2, Outcome.SUCCEEDED.value),
    ]
    first_error = job.attempts[0].error
    assert first_error is not None
    assert first_error["type"] == "RuntimeError"
    assert any("fails on purpose" in line.message for line in store.logs(job_id))


def test_a_business_error_fails_without_retry(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    worker = start_worker()

    job_id = submit(store, wakeups, "tests.business", {}, max_attempts=3)

    job = wait_settled(store, job_id, wait_until)
    assert job.status is JobStatus.FAILED
    assert job.attempt == 1
    assert job.error is not None
    assert job.error["type"] == "BusinessError"
    assert job.error["message"] == "the invoice is already paid"
    assert [a.outcome for a in job.attempts] == [Outcome.BUSINESS_ERROR.value]
    wait_until(lambda: worker.worker.stats.failed == 1)


def test_a_crash_inside_a_side_effect_needs_review(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    start_worker()

    job_id = submit(store, wakeups, "tests.side_effect_crash", {}, max_attempts=3)

    job = wait_settled(store, job_id, wait_until)
    assert job.status is JobStatus.NEEDS_REVIEW
    assert job.side_effect == "pay"
    assert job.attempt == 1
    assert job.error is not None
    assert job.error["type"] == "WorkerCrash"
    assert "exited with code 3" in job.error["message"]
    [attempt] = job.attempts
    assert (attempt.outcome, attempt.side_effect) == (Outcome.CRASHED.value, "pay")
    assert [(s.name, s.kind, s.status) for s in job.steps] == [("pay", "side_effect", "failed")]


def test_a_timeout_kills_the_child_and_its_grandchildren(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any, tmp_path: Path
) -> None:
    start_worker()
    pid_file = tmp_path / "pids"

    job_id = submit(
        store,
        wakeups,
        "tests.spawn_and_hang",
        {"pid_file": str(pid_file)},
        timeout=2,
        max_attempts=1,
    )

    pids = read_pids(pid_file, wait_until)
    assert len(pids) == 3
    job = wait_settled(store, job_id, wait_until)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error["type"] == "Timeout"
    assert [a.outcome for a in job.attempts] == [Outcome.TIMEOUT.value]
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=5)


def test_a_segfault_fails_only_its_attempt(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    worker = start_worker(concurrency=1)

    crashing = submit(store, wakeups, "tests.segfault", {}, max_attempts=1)
    after = submit(store, wakeups, "tests.ok", {"name": "bob", "lines": 0})

    crashed = wait_settled(store, crashing, wait_until)
    assert crashed.status is JobStatus.FAILED
    assert crashed.error is not None
    assert crashed.error["type"] == "WorkerCrash"
    assert "SIGSEGV" in crashed.error["message"]
    assert [a.outcome for a in crashed.attempts] == [Outcome.CRASHED.value]
    served = wait_settled(store, after, wait_until)
    assert served.status is JobStatus.SUCCEEDED
    assert served.worker_id == worker.id
    assert worker.thread.is_alive()


@pytest.mark.parametrize(
    ("automation", "outcome", "error"),
    [
        ("tests.oom_killed", Outcome.CRASHED, "SIGKILL"),
        ("tests.memory_error", Outcome.ERROR, "MemoryError"),
    ],
)
def test_running_out_of_memory_fails_only_its_attempt(
    store: SqlStore,
    wakeups: Wakeups,
    start_worker: StartWorker,
    wait_until: Any,
    automation: str,
    outcome: Outcome,
    error: str,
) -> None:
    worker = start_worker(concurrency=1)
    hungry = submit(store, wakeups, automation, {}, max_attempts=1)
    after = submit(store, wakeups, "tests.ok", {"name": "carol", "lines": 0})

    failed = wait_settled(store, hungry, wait_until)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and error in f"{failed.error['type']} {failed.error['message']}"
    assert [a.outcome for a in failed.attempts] == [outcome.value]
    assert wait_settled(store, after, wait_until).status is JobStatus.SUCCEEDED
    assert worker.thread.is_alive()


# -- control -----------------------------------------------------------------------


def test_cancel_stops_a_running_job_at_once(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any, tmp_path: Path
) -> None:
    worker = start_worker()
    pid_file = tmp_path / "pid"
    job_id = submit(store, wakeups, "tests.slow", {"seconds": 60, "pid_file": str(pid_file)})
    [child] = read_pids(pid_file, wait_until)

    started = time.monotonic()
    store.cancel(job_id)
    wakeups.cancel(job_id)

    wait_until(lambda: gone(child), timeout=5)
    assert time.monotonic() - started < 3
    wait_until(lambda: worker.worker.stats.processed == 1)
    assert worker.worker.stats.lost == 1  # its late finish was fenced out
    job = store.get_job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.result is None
    assert [a.outcome for a in job.attempts] == [Outcome.CANCELLED.value]
    # The slot serves the next job on a new child.
    next_job = wait_settled(store, submit(store, wakeups, "tests.ok", {"name": "c"}), wait_until)
    assert next_job.status is JobStatus.SUCCEEDED
    assert store.get_job(job_id).status is JobStatus.CANCELLED


def test_a_graceful_stop_lets_the_running_job_finish(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any, tmp_path: Path
) -> None:
    worker = start_worker()
    pid_file = tmp_path / "pid"
    job_id = submit(store, wakeups, "tests.slow", {"seconds": 1.0, "pid_file": str(pid_file)})
    read_pids(pid_file, wait_until)

    took = worker.stop(grace=10)

    assert took < 8
    job = store.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == {"slept": 1.0}
    record = store.workers.get(worker.id)
    assert record is not None
    assert record.status == "offline"


def test_a_stop_without_grace_gives_the_job_back(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any, tmp_path: Path
) -> None:
    worker = start_worker()
    pid_file = tmp_path / "pid"
    job_id = submit(store, wakeups, "tests.slow", {"seconds": 60, "pid_file": str(pid_file)})
    [child] = read_pids(pid_file, wait_until)

    took = worker.stop(grace=0)

    assert took < 8
    assert gone(child)
    job = store.get_job(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.worker_id is None
    assert [a.outcome for a in job.attempts] == [Outcome.RELEASED.value]
    # Not lost: the next worker takes it at once.
    [again] = store.claim(
        "another-worker", queues=["default"], automations=["tests.slow"], limit=5, lease_ttl=5
    )
    assert (again.id, again.attempt) == (job_id, 2)


def test_a_busy_worker_claims_no_more_than_its_free_slots(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any, tmp_path: Path
) -> None:
    worker = start_worker(concurrency=1)
    pid_file = tmp_path / "pid"
    running = submit(store, wakeups, "tests.slow", {"seconds": 60, "pid_file": str(pid_file)})
    read_pids(pid_file, wait_until)
    waiting = submit(store, wakeups, "tests.ok", {"name": "d"})
    time.sleep(0.3)  # a busy worker must not claim beyond its free slots

    assert store.get_job(waiting).status is JobStatus.QUEUED
    worker.stop(grace=0)

    assert store.get_job(running).status is JobStatus.QUEUED
    assert store.get_job(waiting).status is JobStatus.QUEUED


def test_a_clean_stop_logs_no_errors(
    store: SqlStore,
    wakeups: Wakeups,
    start_worker: StartWorker,
    wait_until: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="botyard")
    worker = start_worker()
    job = wait_settled(store, submit(store, wakeups, "tests.ok", {"name": "gil"}), wait_until)
    assert job.status is JobStatus.SUCCEEDED

    worker.stop(grace=5)
    time.sleep(0.3)  # the listener thread notices the stop a moment later

    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


# -- leases ------------------------------------------------------------------------


def test_a_job_of_a_vanished_worker_is_recovered_and_run(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    submitted, _ = store.submit(NewJob("tests.ok", {"name": "eve", "lines": 0}))
    [ghost] = store.claim(
        "ghost", queues=["default"], automations=["tests.ok"], limit=1, lease_ttl=0.3
    )
    assert ghost.id == submitted.id

    start_worker(recover_interval=0.2)

    job = wait_settled(store, submitted.id, wait_until)
    assert job.status is JobStatus.SUCCEEDED
    assert [(a.number, a.worker_id, a.outcome) for a in job.attempts] == [
        (1, "ghost", Outcome.LEASE_EXPIRED.value),
        (2, "test-worker-0", Outcome.SUCCEEDED.value),
    ]


def test_a_restarted_worker_recovers_its_own_orphans(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    job, _ = store.submit(NewJob("tests.ok", {"name": "fay", "lines": 0}))
    store.claim(
        "test-worker-0", queues=["default"], automations=["tests.ok"], limit=1, lease_ttl=60
    )

    start_worker()  # same id as the run that "died" holding the job

    recovered = wait_settled(store, job.id, wait_until)
    assert recovered.status is JobStatus.SUCCEEDED
    assert [a.outcome for a in recovered.attempts] == [
        Outcome.LEASE_EXPIRED.value,
        Outcome.SUCCEEDED.value,
    ]


def test_jobs_claimed_ahead_keep_their_lease_while_they_wait(
    store: SqlStore, wakeups: Wakeups, start_worker: StartWorker, wait_until: Any
) -> None:
    # Short jobs first, so the worker starts claiming ahead of its one slot.
    start_worker(lease_ttl=1.0, recover_interval=0.2)
    for n in range(3):
        wait_settled(store, submit(store, wakeups, "tests.ok", {"name": f"warm-{n}"}), wait_until)
    slow = submit(store, wakeups, "tests.slow", {"seconds": 3.0})
    waiting = submit(store, wakeups, "tests.ok", {"name": "behind the slow one"})
    # It waits three lease lengths behind the slow job; its lease must be renewed meanwhile.
    assert wait_settled(store, slow, wait_until).status is JobStatus.SUCCEEDED
    job = wait_settled(store, waiting, wait_until)
    assert job.status is JobStatus.SUCCEEDED
    assert [a.outcome for a in job.attempts] == ["succeeded"]
