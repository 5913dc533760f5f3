"""Run the benchmark suite and print its table.

    .venv/bin/python -m bench.run                       # both backends, median of 3
    .venv/bin/python -m bench.run --backend sqlite --quick --repeat 1
    .venv/bin/python bench/run.py --backend postgres --only w1 --py-spy /tmp/prof

Not a test: nothing here asserts a time. It checks correctness only (every job succeeded with
exactly one attempt) and reports the numbers next to the targets in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench.harness import (
    DEFAULT_PG_ADMIN_URL,
    DEFAULT_REDIS_URL,
    fresh_target,
    machine,
    reference_loop_ms,
)
from bench.workloads import WORKLOADS, Context, PySpy, Sizes

BACKENDS = ("sqlite", "postgres", "postgres+redis", "sqlite+redis")
ALL = ("sqlite", "postgres", "postgres+redis")  # what ``--backend all`` runs
NAMES = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL",
    "postgres+redis": "PG + Redis",
    "sqlite+redis": "SQLite + Redis",
}

Results = dict[str, dict[str, list[dict[str, Any]]]]  # backend -> workload -> one dict per run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--repeat", type=int, default=None, help="Runs per workload (median).")
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke run.")
    parser.add_argument("--only", default="w1,w2,w3", help="Comma-separated workloads.")
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL, help="Where to create DBs.")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="For the +redis backends.")
    parser.add_argument("--submit-threads", type=int, default=4, help="W1 enqueue threads.")
    parser.add_argument("--json", type=Path, help="Also write every run's figures here.")
    parser.add_argument("--py-spy", type=Path, help="Record the W1 worker with py-spy here.")
    parser.add_argument("--log-dir", type=Path, help="Worker logs (default: a temp folder).")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    backends = list(ALL) if args.backend == "all" else [args.backend]
    workloads = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        console.print(f"[red]unknown workloads: {', '.join(unknown)}[/red]")
        return 2
    sizes = Sizes.quick() if args.quick else Sizes()
    sizes = Sizes(**{**sizes.__dict__, "w1_submit_threads": args.submit_threads})
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="botyard-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)

    info = machine(args.pg_url if any(b.startswith("postgres") for b in backends) else None)
    console.print(" · ".join(f"{k}: {v}" for k, v in info.items()), style="dim")
    console.print(f"worker logs: {log_dir}", style="dim")

    results: Results = {b: {w: [] for w in workloads} for b in backends}
    for backend in backends:
        for run in range(args.repeat):
            for name in workloads:
                with fresh_target(backend, args.pg_url, args.redis_url) as target:
                    observers = [PySpy(args.py_spy)] if args.py_spy and name == "w1" else []
                    ctx = Context(target, sizes, log_dir, observers=observers)
                    before = reference_loop_ms()
                    began = time.perf_counter()
                    figures = WORKLOADS[name](ctx)
                    took = time.perf_counter() - began
                    figures["ref_loop_ms"] = (before + reference_loop_ms()) / 2
                results[backend][name].append(figures)
                console.print(
                    f"{NAMES[backend]:<10} {name} run {run + 1}/{args.repeat} "
                    f"({took:.1f}s): {_brief(name, figures)}; "
                    f"reference loop {figures['ref_loop_ms']:.1f} ms",
                    style="dim",
                )

    console.print(summary_table(results, sizes, args.repeat))
    if "w1" in workloads:
        console.print(cpu_table(results))
    if args.json:
        data = {"machine": info, "sizes": sizes.__dict__, "runs": results}
        args.json.write_text(json.dumps(data, indent=2))
        console.print(f"figures written to {args.json}", style="dim")
    return 0


def _brief(name: str, f: dict[str, Any]) -> str:
    if name == "w1":
        return f"enqueue {f['enqueue_per_s']:,.0f}/s, processed {f['processed_per_s']:,.0f}/s"
    if name == "w2":
        return f"p50 {f['p50_ms']:.2f} ms, p95 {f['p95_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms"
    return f"wall {f['wall_s']:.3f}s (ideal {f['ideal_s']:.2f}s)"


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# (label, workload ("" = all), key, format, target per backend: (comparison, bound))
Row = tuple[str, str, str, Callable[[float], str], dict[str, tuple[str, float]]]


def _rows(sizes: Sizes) -> list[Row]:
    def rate(v: float) -> str:
        return f"{v:,.0f}"

    def ms(v: float) -> str:
        return f"{v:.2f}"

    def sec(v: float) -> str:
        return f"{v:.3f}"

    return [
        ("W1 enqueue, jobs/s (submit)", "w1", "enqueue_per_s", rate, {}),
        (
            "W1 processed, jobs/s (wake → last finish)",
            "w1",
            "processed_per_s",
            rate,
            {"postgres": (">=", 2000), "sqlite": (">=", 1000)},
        ),
        ("W2 enqueue→start p50, ms", "w2", "p50_ms", ms, {}),
        ("W2 enqueue→start p95, ms", "w2", "p95_ms", ms, {}),
        (
            "W2 enqueue→start p99, ms",
            "w2",
            "p99_ms",
            ms,
            {"postgres": ("<=", 5.0), "postgres+redis": ("<=", 3.0)},
        ),
        ("W2 p99 from the submit call, ms", "w2", "call_p99_ms", ms, {}),
        (
            f"W3 wall, s (ideal {sizes.w3_ideal:.2f} s)",
            "w3",
            "wall_s",
            sec,
            {"postgres": ("<=", sizes.w3_ideal * 1.05)},
        ),
        ("Reference loop, ms (machine speed)", "", "ref_loop_ms", ms, {}),
    ]


def _runs(per_workload: dict[str, list[dict[str, Any]]], workload: str) -> list[dict[str, Any]]:
    """One workload's runs; every run of every workload for ``""``."""
    if workload:
        return per_workload.get(workload) or []
    return [run for runs in per_workload.values() for run in runs]


def summary_table(results: Results, sizes: Sizes, repeat: int) -> Table:
    backends = list(results)
    table = Table(title=f"botyard benchmarks (median of {repeat}; min to max in brackets)")
    table.add_column("Workload")
    for b in backends:
        table.add_column(NAMES[b], justify="right")
    table.add_column("Target", justify="right")
    for label, workload, key, fmt, targets in _rows(sizes):
        if not any(_runs(results[b], workload) for b in backends):
            continue
        cells = []
        for b in backends:
            runs = _runs(results[b], workload)
            if not runs:
                cells.append("n/a")
                continue
            value = median(runs, key)
            values = [r[key] for r in runs]
            text = fmt(value)
            if len(runs) > 1:
                text += f" [dim]({fmt(min(values))} to {fmt(max(values))})[/dim]"
            if b in targets:
                op, bound = targets[b]
                ok = value >= bound if op == ">=" else value <= bound
                text = f"{'[green]✓' if ok else '[red]✗'}[/] {text}"
            cells.append(text)
        target_text = ", ".join(
            f"{NAMES[b]} {op.replace('>=', '≥').replace('<=', '≤')} {fmt(bound)}"
            for b, (op, bound) in targets.items()
            if b in backends
        )
        table.add_row(label, *cells, target_text or "")
    return table


def cpu_table(results: Results) -> Table:
    table = Table(title="W1 drain: CPU used per second of wall time (median; 1.00 = one core)")
    table.add_column("Backend")
    for col in ("worker process", "job children", "PostgreSQL", "bench", "total"):
        table.add_column(col, justify="right")
    for b, per in results.items():
        runs = per.get("w1") or []
        if not runs:
            continue
        shares = {
            k: statistics.median(r[f"cpu_{k}_s"] / r["drain_s"] for r in runs)
            for k in ("worker", "children", "postgres", "bench")
        }
        table.add_row(
            NAMES[b],
            *(f"{shares[k]:.2f}" for k in ("worker", "children", "postgres", "bench")),
            f"{sum(shares.values()):.2f}",
        )
    return table


if __name__ == "__main__":
    sys.exit(main())
