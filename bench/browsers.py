"""Browser sessions: time to a ready page (warm against cold), and concurrent demo jobs.

    python -m bench.browsers                 # 30 sessions each way, then 10 concurrent jobs
    python -m bench.browsers --sessions 50 --concurrent 10

1. **Ready page.** The local provider in this process, as a job's child process runs it:
   ``provision()`` to a page that can ``goto``. *Cold* launches the system Chromium for every
   session (``BROWSER_WARM=false``); *warm* takes the browser and the fresh context and page the
   provider prepared between jobs (``prepare()``, off the job's clock, as the child does).
2. **Concurrent demo jobs.** The embedded system (SQLite, orchestrator, one worker with
   ``--concurrent`` slots) and the demo portal with one account per job; ``--concurrent``
   ``metrofiber.validation`` jobs submitted at once, each a real Chromium login with a TOTP code.
   Peak memory is the worker's whole process tree (worker, job processes, Playwright drivers,
   Chromium) in PSS, sampled every 0.25 s, minus the idle tree before the jobs (a job process
   starts its browser for its first browser job), divided by the jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

if __package__ in (None, ""):  # ``python bench/browsers.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from bench.harness import percentile
from bench.http_load import free_port
from botyard.browsers.local import LocalProvider
from botyard.cli.demo import start_portal
from botyard.cli.supervisor import Supervisor, wait_healthy
from botyard.client import FINAL, Client
from botyard.store.engine import build_engine, upgrade

console = Console(width=140)


def ready_page(sessions: int) -> dict[str, list[float]]:
    """Seconds from provision() to a page that has loaded about:blank."""
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    for mode in ("cold", "warm"):
        provider = LocalProvider(warm=mode == "warm")
        provider.prepare("playwright")  # warm: launch once, as a child does at start
        for _ in range(sessions + 1):
            started = time.perf_counter()
            session = provider.provision(None, "playwright")
            session.page.goto("about:blank")
            elapsed = time.perf_counter() - started
            provider.terminate(session)
            if mode == "cold":
                provider.close()  # the next session launches Chromium again
            else:
                provider.prepare("playwright")
            times[mode].append(elapsed)
        provider.close()
        times[mode] = times[mode][1:]  # the first one also starts Playwright's driver
    return times


def _tree_pss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_full_info().pss
    return total


def concurrent_jobs(count: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="botyard-bench-browsers-"))
    password = "bench-" + secrets.token_hex(6)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env.update(
        BOTYARD_DATA_DIR=str(folder),
        ADMIN_PASSWORD=password,
        BOTYARD_WORKER_TOKEN=secrets.token_urlsafe(24),
        BOTYARD_URL=url,
    )
    upgrade(build_engine(f"sqlite:///{folder / 'botyard.db'}"))
    names = tuple(f"ops{i + 1}" for i in range(count))
    _portal_url, stop_portal, server_env, worker_env = start_portal(names)
    supervisor = Supervisor(env)
    modules = ["--automations", "botyard.demo.automations"]
    try:
        supervisor.start("orchestrator", ["server", "--port", str(port), *modules], env=server_env)
        wait_healthy(url, supervisor)
        args = ["worker", *modules, "-c", str(count), "--worker-id", "bench-browsers"]
        supervisor.start("worker", args, env=worker_env)
        worker = psutil.Process(supervisor.procs[-1][1].pid)
        with Client(url) as client:
            client.login("admin", password)
            time.sleep(5)  # the job processes have started (no browser yet: none was asked for)
            baseline = _tree_pss(worker)
            peak, done = baseline, threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, _tree_pss(worker))
                    time.sleep(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            ids = [
                client.submit(
                    "metrofiber.validation",
                    {"circuit_number": f"FTTH-{1001 + i % 12}", "account": name},
                )["id"]
                for i, name in enumerate(names)
            ]
            jobs = {}
            while time.monotonic() - started < 300:
                jobs = {i: client.get(i) for i in ids}
                if all(j["status"] in FINAL for j in jobs.values()):
                    break
                time.sleep(0.2)
            wall = time.monotonic() - started
            done.set()
            sampler.join()
    finally:
        supervisor.stop()
        stop_portal()
    durations = [
        (
            datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["started_at"])
        ).total_seconds()
        for j in jobs.values()
        if j.get("finished_at")
    ]
    return {
        "jobs": count,
        "succeeded": sum(1 for j in jobs.values() if j["status"] == "succeeded"),
        "wall": wall,
        "job_p50": statistics.median(durations) if durations else float("nan"),
        "job_max": max(durations) if durations else float("nan"),
        "baseline_mib": baseline / 2**20,
        "peak_mib": peak / 2**20,
        "per_job_mib": (peak - baseline) / 2**20 / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="sessions per mode")
    parser.add_argument("--concurrent", type=int, default=10, help="demo jobs at once")
    args = parser.parse_args()
    times = ready_page(args.sessions)
    table = Table(title=f"Job start to a ready page, local Chromium ({args.sessions} sessions)")
    for column in ("mode", "p50 ms", "p95 ms", "max ms"):
        table.add_column(column, justify="right")
    for mode in ("cold", "warm"):
        ms = [t * 1000 for t in times[mode]]
        table.add_row(
            mode, f"{percentile(ms, 50):.1f}", f"{percentile(ms, 95):.1f}", f"{max(ms):.1f}"
        )
    console.print(table)
    ratio = percentile(times["cold"], 50) / percentile(times["warm"], 50)
    console.print(f"warm is {ratio:.0f}x faster than cold at p50")
    figures = concurrent_jobs(args.concurrent)
    table = Table(title=f"{args.concurrent} concurrent demo jobs (login + TOTP + validate)")
    for column in (
        "jobs",
        "succeeded",
        "wall s",
        "job p50 s",
        "job max s",
        "tree before MiB",
        "peak MiB",
        "per job MiB",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(figures["jobs"]),
        str(figures["succeeded"]),
        f"{figures['wall']:.1f}",
        f"{figures['job_p50']:.2f}",
        f"{figures['job_max']:.2f}",
        f"{figures['baseline_mib']:.0f}",
        f"{figures['peak_mib']:.0f}",
        f"{figures['per_job_mib']:.0f}",
    )
    console.print(table)


if __name__ == "__main__":
    main()
