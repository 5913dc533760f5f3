"""Where W1's time goes: run W1 once with a traced worker and break the drain down.

    .venv/bin/python -m bench.profile_w1 --backend postgres [--py-spy /tmp/prof]

The worker is ``bench.instrumented_worker`` (the real worker with counters wrapped around its
store calls), so its throughput is a little lower than the plain figure of ``bench.run``.
Reports CPU per thread of the worker process (from /proc), claims and finish batches,
and SQL statements, pool checkouts and commits per job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench.harness import DEFAULT_PG_ADMIN_URL, WorkerProcess, fresh_target, percentile
from bench.workloads import Context, PySpy, Sizes, w1

_TICK = os.sysconf("SC_CLK_TCK")


class ThreadCpu:
    """CPU seconds per (kernel-named) thread of the worker process across the drain."""

    def __init__(self) -> None:
        self.before: dict[int, tuple[str, float]] = {}
        self.after: dict[int, tuple[str, float]] = {}
        self.wall = 0.0
        self._t0 = 0.0

    @staticmethod
    def _read(pid: int) -> dict[int, tuple[str, float]]:
        out = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(tid) == pid:
                name = "main (claim loop)"
            out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
        return out

    def __call__(self, phase: str, worker: WorkerProcess, ctx: Context) -> None:
        if phase == "start":
            self.before = self._read(worker.pid)
            self._t0 = time.perf_counter()
        else:
            self.after = self._read(worker.pid)
            self.wall = time.perf_counter() - self._t0

    def per_name(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for tid, (name, cpu) in self.after.items():
            key = "slot-*" if name.startswith("slot-") else name
            totals[key] += cpu - self.before.get(tid, (name, 0.0))[1]
        return dict(totals)


def report(console: Console, backend: str, figures: dict[str, Any], cpu: ThreadCpu, trace: dict):
    jobs = figures["attempt_rows"]
    console.print(
        f"\n[bold]{backend}[/bold]: {jobs} jobs, processed {figures['processed_per_s']:,.0f}/s "
        f"(traced worker), drain {figures['drain_s']:.2f}s"
    )
    table = Table(title="worker process CPU during the drain, by thread")
    for col in ("thread", "CPU s", "share of one core", "CPU ms per job"):
        table.add_column(col, justify="right" if col != "thread" else "left")
    per = cpu.per_name()
    for name, secs in sorted(per.items(), key=lambda kv: -kv[1]):
        if secs > 0:
            table.add_row(
                name, f"{secs:.2f}", f"{secs / cpu.wall:.2f}", f"{secs / jobs * 1000:.3f}"
            )
    total = sum(per.values())
    table.add_row("[b]all", f"{total:.2f}", f"{total / cpu.wall:.2f}", f"{total / jobs * 1000:.3f}")
    console.print(table)
    console.print(
        f"job children: {figures['cpu_children_s'] / jobs * 1000:.3f} ms CPU per job; "
        f"PostgreSQL server: {figures['cpu_postgres_s'] / jobs * 1000:.3f} ms per job; "
        f"bench: {figures['cpu_bench_s'] / jobs * 1000:.3f} ms per job"
    )

    spans = trace["spans"]
    table = Table(title="store calls of the worker (whole run, warm-up included)")
    for col in ("call", "calls", "jobs per call", "p50 ms", "p99 ms", "total s"):
        table.add_column(col, justify="right" if col != "call" else "left")
    for name in sorted(spans, key=lambda n: (not n.startswith("claim("), n)):
        rows = spans[name]
        durations = [r[1] * 1000 for r in rows]
        items = sum(r[2] for r in rows)
        table.add_row(
            name,
            str(len(rows)),
            f"{items / len(rows):.2f}",
            f"{percentile(durations, 50):.3f}",
            f"{percentile(durations, 99):.3f}",
            f"{sum(durations) / 1000:.2f}",
        )
    console.print(table)

    processed = sum(r[2] for r in spans.get("finish", []))
    table = Table(title=f"SQL per job ({processed} jobs finished in the run)")
    for col in ("thread", "statement", "count", "per job", "mean ms", "total s"):
        table.add_column(
            col, justify="right" if col in ("count", "per job", "mean ms", "total s") else "left"
        )
    for s in trace["statements"]:
        table.add_row(
            s["thread"],
            s["statement"],
            str(s["count"]),
            f"{s['count'] / processed:.2f}",
            f"{s['total_s'] / s['count'] * 1000:.3f}",
            f"{s['total_s']:.2f}",
        )
    console.print(table)
    checkouts = trace["checkouts"]
    commits = trace["commits"]
    commit_s = trace.get("commit_s", {})
    console.print(
        "pool checkouts per job: "
        + ", ".join(f"{t} {n / processed:.2f}" for t, n in sorted(checkouts.items()))
        + "; commits per job (mean ms): "
        + ", ".join(
            f"{t} {n / processed:.2f} ({commit_s.get(t, 0.0) / n * 1000:.3f})"
            for t, n in sorted(commits.items())
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_w1",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--py-spy", type=Path, help="Also record the worker with py-spy here.")
    parser.add_argument("--json", type=Path, help="Write the raw trace summary here.")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    log_dir = Path(tempfile.mkdtemp(prefix="botyard-profile-"))
    dump: dict[str, Any] = {}
    for backend in backends:
        trace_file = log_dir / f"trace-{backend}.json"
        cpu = ThreadCpu()
        observers: list[Any] = [cpu]
        if args.py_spy:
            observers.append(PySpy(args.py_spy, rate=200))
        with fresh_target(backend, args.pg_url) as target:
            ctx = Context(
                target,
                Sizes(w1_jobs=args.jobs),
                log_dir,
                observers=observers,
                worker_entry=[sys.executable, "-m", "bench.instrumented_worker"],
                worker_env={"BENCH_TRACE_FILE": str(trace_file)},
            )
            figures = w1(ctx)
        trace = json.loads(trace_file.read_text())
        report(console, backend, figures, cpu, trace)
        dump[backend] = {"figures": figures, "threads": cpu.per_name(), "wall": cpu.wall}
        claims = trace["spans"].get("claim", [])
        if claims:
            sizes = [r[2] for r in claims]
            console.print(
                f"claims: {len(claims)}, mean {statistics.mean(sizes):.2f} jobs, "
                f"{sum(1 for s in sizes if s == 0)} empty"
            )
    if args.json:
        args.json.write_text(json.dumps(dump, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
