"""The three workloads. Each runs on a fresh store with its own worker process.

W1  throughput: enqueue N no-op jobs with ``SqlStore.submit`` (one call per job, a few threads),
    then wake one idle pull worker (concurrency 8) and let it drain them.
W2  latency: an idle worker; jobs submitted 10 ms apart through ``JobService.submit``; the time
    from its wake-up (``Wakeups.jobs`` returned: the job is committed and on the bus or in Redis)
    to the automation function
    starting in the child.
W3  concurrency: N jobs of ``time.sleep(0.1)`` at concurrency 20, queued while the worker is
    idle; the time from the wake-up to the last job finished, against the ideal.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness import (
    BenchError,
    Client,
    Target,
    WorkerProcess,
    count_touched,
    percentile,
    postgres_cpu_seconds,
    read_outcome,
    start_worker,
    wait_final,
    wait_registered,
    warm_up,
)
from botyard.orchestrator.service import Submission
from botyard.store.records import NewJob


@dataclass(frozen=True)
class Sizes:
    w1_jobs: int = 5000
    w1_concurrency: int = 8
    w1_submit_threads: int = 4
    w2_jobs: int = 300
    w2_concurrency: int = 8
    w2_spacing: float = 0.010
    w3_jobs: int = 200
    w3_concurrency: int = 20
    w3_sleep: float = 0.1

    @classmethod
    def quick(cls) -> Sizes:
        return cls(w1_jobs=500, w2_jobs=50, w3_jobs=40)

    @property
    def w3_ideal(self) -> float:
        waves = -(-self.w3_jobs // self.w3_concurrency)
        return waves * self.w3_sleep


@dataclass
class Context:
    target: Target
    sizes: Sizes
    log_dir: Path
    # Called with ("start" | "stop", worker, context) around the W1 drain (profiling).
    observers: list[Callable[[str, WorkerProcess, Context], None]] = field(default_factory=list)
    worker_entry: list[str] | None = None  # another command instead of ``python -m botyard``
    worker_env: dict[str, str] | None = None


@contextlib.contextmanager
def _worker(ctx: Context, name: str, concurrency: int) -> Iterator[tuple[Client, WorkerProcess]]:
    client = Client.open(ctx.target)
    log_path = ctx.log_dir / f"{ctx.target.backend}-{name}-{time.strftime('%H%M%S')}.log"
    worker = start_worker(
        ctx.target, concurrency, log_path=log_path, entry=ctx.worker_entry, extra_env=ctx.worker_env
    )
    try:
        wait_registered(client, worker)
        warm_up(client, worker)
        yield client, worker
    except BaseException:
        print(f"--- worker log ({log_path}) ---\n{worker.tail()}")
        raise
    finally:
        worker.stop()
        client.close()


def _new_job(automation: str, payload: dict[str, Any]) -> NewJob:
    # What JobService.submit would store for these automations (max_attempts=1, no retries).
    return NewJob(automation=automation, payload=payload, max_attempts=1)


def _enqueue_quietly(
    client: Client, automation: str, payload: dict[str, Any], n: int, threads: int
) -> tuple[float, list[int]]:
    """``SqlStore.submit`` once per job from ``threads`` threads; no wake-up is published.

    Returns the seconds it took and the jobs' ids."""
    shares = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []
    ids: list[int] = []

    def submit(count: int) -> None:
        barrier.wait()
        try:
            for _ in range(count):
                job, _ = client.store.submit(_new_job(automation, payload))
                ids.append(job.id)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=submit, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed, sorted(ids)


def _stay_idle(client: Client, automation: str) -> None:
    touched = count_touched(client, automation)
    if touched:
        raise BenchError(f"the worker took {touched} {automation} jobs before its wake-up")


class PySpy:
    """An observer that records the worker with ``py-spy record`` while W1 drains."""

    def __init__(self, folder: Path, rate: int = 250) -> None:
        self.folder = folder
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: Path | None = None

    def __call__(self, phase: str, worker: WorkerProcess, ctx: Context) -> None:
        if phase == "start":
            exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%H%M%S")
            self.output = self.folder / f"w1-{ctx.target.backend}-{stamp}.txt"
            command = [exe, "record", "--pid", str(worker.pid), "--rate", str(self.rate)]
            command += ["--threads", "--idle", "--format", "raw", "--output", str(self.output)]
            self.proc = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(1.0)  # py-spy attaches
        elif self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
            print(f"py-spy: {self.output}")


@contextlib.contextmanager
def _observed(ctx: Context, worker: WorkerProcess) -> Iterator[None]:
    for observer in ctx.observers:
        observer("start", worker, ctx)
    try:
        yield
    finally:
        for observer in reversed(ctx.observers):
            observer("stop", worker, ctx)


# -- W1 ---------------------------------------------------------------------------


def w1(ctx: Context) -> dict[str, Any]:
    n = ctx.sizes.w1_jobs
    with _worker(ctx, "w1", ctx.sizes.w1_concurrency) as (client, worker):
        enqueue_s, ids = _enqueue_quietly(client, "bench.noop", {}, n, ctx.sizes.w1_submit_threads)
        _stay_idle(client, "bench.noop")
        with _observed(ctx, worker):
            cpu0, pg0, me0 = worker.cpu_seconds(), postgres_cpu_seconds(), _own_cpu()
            woke = time.time()
            client.wake("default", ids)
            seen = wait_final(client, worker, "bench.noop", n, timeout=900, interval=0.1)
            cpu1, pg1, me1 = worker.cpu_seconds(), postgres_cpu_seconds(), _own_cpu()
        outcome = read_outcome(client, "bench.noop", n)
    if outcome.problems:
        raise BenchError("W1: " + "; ".join(outcome.problems))
    last = max(r.finished_at for r in outcome.rows).timestamp()
    first = min(r.started_at for r in outcome.rows).timestamp()
    drain = last - woke
    return {
        "enqueue_per_s": n / enqueue_s,
        "processed_per_s": n / drain,
        "drain_s": drain,
        "first_start_to_last_finish_per_s": n / (last - first),
        "seen_after_s": seen - woke,
        "attempt_rows": outcome.attempt_rows,
        "cpu_worker_s": cpu1["worker"] - cpu0["worker"],
        "cpu_children_s": cpu1["children"] - cpu0["children"],
        "cpu_postgres_s": pg1 - pg0,
        "cpu_bench_s": me1 - me0,
    }


def _own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


# -- W2 ---------------------------------------------------------------------------


def w2(ctx: Context) -> dict[str, Any]:
    n, spacing = ctx.sizes.w2_jobs, ctx.sizes.w2_spacing
    marks: dict[int, tuple[float, float, float]] = {}  # job -> (called, published, returned)
    with _worker(ctx, "w2", ctx.sizes.w2_concurrency) as (client, worker):
        # The latency counts from the wake-up: by then the job is committed and the worker told.
        # Whatever ``submit`` does after it (an audit record) is not the worker's latency.
        published: list[float] = []
        wakeups = client.service.wakeups
        tell = wakeups.jobs

        def stamped(queue: str, job_ids: Sequence[int]) -> None:
            tell(queue, job_ids)  # on the bus, or on Redis lists
            published.append(time.time())

        wakeups.jobs = stamped  # type: ignore[method-assign]
        request = Submission("bench.noop", {})
        began = time.perf_counter() + 0.05
        for i in range(n):
            pause = began + i * spacing - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            called = time.time()
            job, _ = client.service.submit(request, actor=None)
            returned = time.time()
            marks[job.id] = (called, published[-1] if published else returned, returned)
            published.clear()
        wait_final(client, worker, "bench.noop", n, timeout=120)
        outcome = read_outcome(client, "bench.noop", n)
    if outcome.problems:
        raise BenchError("W2: " + "; ".join(outcome.problems))
    from_publish = [(r.result - marks[r.id][1]) * 1000 for r in outcome.rows]
    from_return = [(r.result - marks[r.id][2]) * 1000 for r in outcome.rows]
    from_call = [(r.result - marks[r.id][0]) * 1000 for r in outcome.rows]
    submit_ms = [(ret - call) * 1000 for call, _, ret in marks.values()]
    return {
        "p50_ms": percentile(from_publish, 50),
        "p95_ms": percentile(from_publish, 95),
        "p99_ms": percentile(from_publish, 99),
        "max_ms": max(from_publish),
        "return_p50_ms": percentile(from_return, 50),
        "return_p99_ms": percentile(from_return, 99),
        "call_p50_ms": percentile(from_call, 50),
        "call_p99_ms": percentile(from_call, 99),
        "submit_p50_ms": percentile(submit_ms, 50),
        "submit_p99_ms": percentile(submit_ms, 99),
    }


# -- W3 ---------------------------------------------------------------------------


def w3(ctx: Context) -> dict[str, Any]:
    n, sleep = ctx.sizes.w3_jobs, ctx.sizes.w3_sleep
    with _worker(ctx, "w3", ctx.sizes.w3_concurrency) as (client, worker):
        _, ids = _enqueue_quietly(client, "bench.sleep", {"seconds": sleep}, n, 1)
        _stay_idle(client, "bench.sleep")
        woke = time.time()
        client.wake("default", ids)
        seen = wait_final(client, worker, "bench.sleep", n, timeout=120, interval=0.02)
        outcome = read_outcome(client, "bench.sleep", n)
    if outcome.problems:
        raise BenchError("W3: " + "; ".join(outcome.problems))
    last = max(r.finished_at for r in outcome.rows).timestamp()
    starts = sorted(r.result - woke for r in outcome.rows)
    return {
        "wall_s": last - woke,
        "ideal_s": ctx.sizes.w3_ideal,
        "seen_after_s": seen - woke,
        "first_start_s": starts[0],
        "last_start_s": starts[-1],
    }


WORKLOADS = {"w1": w1, "w2": w2, "w3": w3}
