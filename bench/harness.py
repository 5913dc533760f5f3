"""What every workload needs: a fresh store, a worker process, and ways to read the outcome."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import func, make_url, select

from botyard.automations.registry import load_automations
from botyard.bus import Bus, open_bus
from botyard.bus.redis_events import connect
from botyard.bus.redis_lists import RedisJobLists
from botyard.jobs import FINAL_STATUSES, JobStatus
from botyard.orchestrator.service import JobService
from botyard.store.sql import SqlStore, open_store
from botyard.store.tables import attempts, jobs

BENCH_DIR = Path(__file__).resolve().parent
AUTOMATIONS = BENCH_DIR / "automations.py"
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_FINAL = [s.value for s in FINAL_STATUSES]


class BenchError(RuntimeError):
    pass


def conninfo(url: str) -> str:
    """A libpq URL for psycopg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# -- backends -------------------------------------------------------------------


@dataclass
class Target:
    """One fresh, migrated store and how a worker process reaches it."""

    backend: str
    url: str
    data_dir: Path
    worker_args: list[str]
    database: str | None = None  # the throw-away PostgreSQL database
    redis_url: str | None = None  # Redis dispatch ("…+redis" backends)
    redis_prefix: str = "botyard"  # a throw-away prefix: its keys are deleted afterwards

    def worker_env(self) -> dict[str, str]:
        drop = ("DATABASE_URL", "BOTYARD_DATA_DIR", "REDIS_URL", "VALKEY_HOST")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        if self.redis_url is not None:
            env["REDIS_URL"] = self.redis_url
            env["BOTYARD_REDIS_PREFIX"] = self.redis_prefix
        # The polling safety net is pushed out of the way, so that an idle worker stays idle
        # while a workload enqueues and only the bus wakes it (W1 and W3 rely on this).
        env["BOTYARD_WORKER_POLL_INTERVAL"] = "3600"
        env["PYTHONUNBUFFERED"] = "1"
        return env


@contextlib.contextmanager
def fresh_target(
    backend: str, pg_admin_url: str, redis_url: str = DEFAULT_REDIS_URL
) -> Iterator[Target]:
    """A new SQLite file in a temp folder, or a new PostgreSQL database dropped afterwards; with
    ``+redis``, Redis dispatch under a prefix of its own, whose keys are deleted afterwards."""
    store, _, extra = backend.partition("+")
    if extra not in ("", "redis"):
        raise BenchError(f"unknown backend {backend!r}")
    with _fresh_store(store, pg_admin_url) as target:
        target.backend = backend
        if extra == "redis":
            target.redis_url = redis_url
            target.redis_prefix = f"botyard-bench-{secrets.token_hex(4)}"
        try:
            yield target
        finally:
            if target.redis_url is not None:
                _delete_keys(target.redis_url, target.redis_prefix)


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextlib.contextmanager
def _fresh_store(backend: str, pg_admin_url: str) -> Iterator[Target]:
    data_dir = Path(tempfile.mkdtemp(prefix="botyard-bench-"))
    database: str | None = None
    try:
        if backend == "sqlite":
            url = f"sqlite:///{data_dir / 'botyard.db'}"
            target = Target(backend, url, data_dir, ["--data-dir", str(data_dir)])
        elif backend == "postgres":
            database = f"botyard_bench_{secrets.token_hex(6)}"
            with psycopg.connect(conninfo(pg_admin_url), autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            url = make_url(pg_admin_url).set(database=database).render_as_string(False)
            args = ["--database-url", url, "--data-dir", str(data_dir)]
            target = Target(backend, url, data_dir, args, database)
        else:
            raise BenchError(f"unknown backend {backend!r}")
        open_store(url).close()  # migrate once, before any process races to it
        yield target
    finally:
        if database is not None:
            with psycopg.connect(conninfo(pg_admin_url), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class Client:
    """The bench's own side: the store, the bus and the service, as the API holds them."""

    store: SqlStore
    bus: Bus
    service: JobService

    @classmethod
    def open(cls, target: Target) -> Client:
        registry = load_automations([str(AUTOMATIONS)])
        store = open_store(target.url, migrate=False)
        bus = open_bus(target.url)
        lists = None
        if target.redis_url is not None:
            lists = RedisJobLists(connect(target.redis_url), prefix=target.redis_prefix)
        return cls(store, bus, JobService(store, bus, registry, lists=lists))

    def wake(self, queue: str, job_ids: Sequence[int]) -> None:
        """Tell the worker these jobs can run: one Redis push of every entry, or one bus event."""
        self.service.wakeups.jobs(queue, job_ids)

    def close(self) -> None:
        if self.service.wakeups.lists is not None:
            self.service.wakeups.lists.close()
        self.bus.close()
        self.store.close()


# -- the worker process -----------------------------------------------------------


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    worker_id: str
    log_path: Path
    concurrency: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the worker exited with code {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the worker process and by its job children."""
        try:
            me = psutil.Process(self.pid)
            own = me.cpu_times()
            kids = 0.0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    t = child.cpu_times()
                    kids += t.user + t.system
            return {"worker": own.user + own.system, "children": kids}
        except psutil.Error:
            return {"worker": 0.0, "children": 0.0}


def start_worker(
    target: Target,
    concurrency: int,
    *,
    log_path: Path,
    entry: Sequence[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """``botyard worker`` as its own process (``entry`` swaps the command, for profiling)."""
    worker_id = f"bench-{target.backend}-{secrets.token_hex(3)}"
    command = list(entry or [sys.executable, "-m", "botyard"])
    command += [
        "worker",
        "--automations",
        str(AUTOMATIONS),
        "--concurrency",
        str(concurrency),
        "--worker-id",
        worker_id,
        *target.worker_args,
    ]
    env = target.worker_env()
    env.update(extra_env or {})
    log = log_path.open("ab")
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=BENCH_DIR.parent,
    )
    log.close()
    return WorkerProcess(proc, worker_id, log_path, concurrency)


def wait_registered(client: Client, worker: WorkerProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check()
        record = client.store.workers.get(worker.worker_id)
        if record is not None and record.status == "online":
            return
        time.sleep(0.05)
    raise BenchError(f"the worker did not register in {timeout:g}s:\n{worker.tail()}")


def warm_up(client: Client, worker: WorkerProcess, seconds: float = 0.4) -> None:
    """One job per slot at once, so every slot's child has imported and every statement of
    the claim and finish paths has been compiled before anything is measured."""
    from botyard.orchestrator.service import Submission

    for _ in range(worker.concurrency):
        client.service.submit(Submission("bench.warmup", {"seconds": seconds}), actor=None)
    wait_final(client, worker, "bench.warmup", worker.concurrency, timeout=120)
    time.sleep(0.3)  # let the writer, the keeper and the children settle


# -- reading the store ------------------------------------------------------------


def count_final(client: Client, automation: str) -> int:
    with client.store.engine.connect().execution_options(readonly=True) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.automation == automation, jobs.c.status.in_(_FINAL))
            ).scalar_one()
        )


def count_touched(client: Client, automation: str) -> int:
    """Jobs of ``automation`` that a worker has claimed (or finished) already."""
    with client.store.engine.connect().execution_options(readonly=True) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.automation == automation, jobs.c.status != JobStatus.QUEUED.value)
            ).scalar_one()
        )


def wait_final(
    client: Client,
    worker: WorkerProcess,
    automation: str,
    expected: int,
    *,
    timeout: float,
    interval: float = 0.1,
) -> float:
    """Block until ``expected`` jobs of ``automation`` are final; returns when we saw it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_final(client, automation) >= expected:
            return time.time()
        worker.check()
        time.sleep(interval)
    raise BenchError(f"{automation}: not all {expected} jobs finished in {timeout:g}s")


@dataclass
class JobRow:
    id: int
    status: str
    attempt: int
    result: Any
    started_at: datetime
    finished_at: datetime


@dataclass
class Outcome:
    rows: list[JobRow]
    attempt_rows: int
    jobs_with_one_attempt: int
    problems: list[str] = field(default_factory=list)


def read_outcome(client: Client, automation: str, expected: int) -> Outcome:
    """Every job of ``automation`` and its attempt rows; lists whatever is not a clean run."""
    with client.store.engine.connect().execution_options(readonly=True) as conn:
        rows = [
            JobRow(r.id, r.status, r.attempt, r.result, r.started_at, r.finished_at)
            for r in conn.execute(
                select(
                    jobs.c.id,
                    jobs.c.status,
                    jobs.c.attempt,
                    jobs.c.result,
                    jobs.c.started_at,
                    jobs.c.finished_at,
                ).where(jobs.c.automation == automation)
            )
        ]
        per_job = select(attempts.c.job_id, func.count().label("n")).join(
            jobs, jobs.c.id == attempts.c.job_id
        )
        per_job = per_job.where(jobs.c.automation == automation).group_by(attempts.c.job_id)
        counts = [r.n for r in conn.execute(per_job)]
    problems = []
    if len(rows) != expected:
        problems.append(f"{len(rows)} jobs stored, {expected} expected")
    bad = [r for r in rows if r.status != JobStatus.SUCCEEDED.value]
    if bad:
        problems.append(f"{len(bad)} jobs did not succeed (e.g. #{bad[0].id}: {bad[0].status})")
    retried = [r for r in rows if r.attempt != 1]
    if retried:
        problems.append(f"{len(retried)} jobs ran more than once")
    if sum(counts) != expected or any(n != 1 for n in counts) or len(counts) != expected:
        problems.append(f"{sum(counts)} attempt rows over {len(counts)} jobs")
    return Outcome(rows, sum(counts), sum(1 for n in counts if n == 1), problems)


# -- small helpers ----------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def reference_loop_ms(iterations: int = 300_000) -> float:
    """How long a fixed pure-Python loop takes here and now: the machine's speed.

    On a shared virtual machine it moves by up to 2x over minutes, and every figure moves with
    it; runs are only comparable when this figure is close.
    """
    began = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return (time.perf_counter() - began) * 1000


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process on this machine (0 when none is visible)."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
    return total


def machine(pg_admin_url: str | None) -> dict[str, str]:
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if pg_admin_url:
        try:
            with psycopg.connect(conninfo(pg_admin_url), connect_timeout=3) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                info["postgres"] = str(row[0]) if row else "?"
        except psycopg.Error:
            info["postgres"] = "unreachable"
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"
