"""``botyard`` with tracing wrapped around the worker's store calls — for profiling, not timing.

    python -m bench.instrumented_worker worker --automations bench/automations.py ...

Wraps, without changing them, ``SqlStore.claim`` / ``SqlStore.finish`` (how long, how many
jobs), ``StoreWriter._write_run`` (batch sizes), ``Slot._execute`` (the child round trip), and
counts every SQL statement and pool checkout per thread with SQLAlchemy events, and times every
COMMIT. At exit (the worker stops on SIGTERM) it writes a JSON summary to ``$BENCH_TRACE_FILE``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from botyard.store.sql import SqlStore
from botyard.worker.slot import Slot
from botyard.worker.writer import StoreWriter

_lock = threading.Lock()
_spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)  # name -> (start, dur, n)
_statements: dict[tuple[str, str], list[float]] = defaultdict(list)  # (thread, verb) -> durations
_checkouts: dict[str, int] = defaultdict(int)
_commits: dict[str, list[float]] = defaultdict(list)  # thread -> COMMIT round trips
# Statements and COMMITs slower than $BENCH_SLOW_MS (default 10): (start, dur, thread, verb, pid)
_slow: list[tuple[float, float, str, str, Any]] = []
_SLOW_S = float(os.environ.get("BENCH_SLOW_MS", "10")) / 1000
_connects: list[tuple[float, str, Any]] = []  # new pool connections: (when, thread, pid)
_local = threading.local()


def _backend(conn: Any) -> Any:
    try:
        return conn.connection.dbapi_connection.info.backend_pid
    except AttributeError:
        return None


def _thread() -> str:
    name = threading.current_thread().name
    return "slot" if name.startswith("botyard-slot") else name


def _span(name: str, start: float, n: int) -> None:
    with _lock:
        _spans[name].append((start, time.perf_counter() - start, n))


def _wrap_claim() -> None:
    original = SqlStore.claim

    def claim(self: SqlStore, worker_id: str, **kw: Any) -> Any:
        start = time.perf_counter()
        got = original(self, worker_id, **kw)
        _span(f"claim(limit={kw.get('limit')})", start, len(got))
        _span("claim", start, len(got))
        return got

    SqlStore.claim = claim  # type: ignore[method-assign]


def _wrap_finish() -> None:
    original = SqlStore.finish

    def finish(self: SqlStore, completions: Any) -> Any:
        start = time.perf_counter()
        got = original(self, completions)
        _span("finish", start, len(completions))
        return got

    SqlStore.finish = finish  # type: ignore[method-assign]


def _wrap_writer() -> None:
    original = StoreWriter._write_run

    def write_run(self: StoreWriter, run: list[Any]) -> None:
        start = time.perf_counter()
        original(self, run)
        _span(f"writer:{type(run[0]).__name__}", start, len(run))

    StoreWriter._write_run = write_run  # type: ignore[method-assign]


def _wrap_slot() -> None:
    original = Slot._execute

    def execute(self: Slot, job: Any) -> Any:
        start = time.perf_counter()
        got = original(self, job)
        _span("slot:child round trip", start, 1)
        return got

    Slot._execute = execute  # type: ignore[method-assign]


def _sql_events() -> None:
    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        _local.began = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):
        took = time.perf_counter() - getattr(_local, "began", time.perf_counter())
        words = statement.lstrip().split(None, 3)
        verb = " ".join(words[:3]) if words and words[0].upper() == "WITH" else " ".join(words[:1])
        if words and words[0].upper() in ("UPDATE", "INSERT", "DELETE"):
            verb = " ".join(words[:3])
        with _lock:
            _statements[(_thread(), verb + (" (many)" if many else ""))].append(took)
            if took > _SLOW_S:
                _slow.append((_local.began, took, _thread(), verb, _backend(conn)))

    @event.listens_for(Pool, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        pid = getattr(getattr(dbapi_connection, "info", None), "backend_pid", None)
        with _lock:
            _connects.append((time.perf_counter(), _thread(), pid))

    @event.listens_for(Pool, "checkout")
    def _checkout(*_: Any) -> None:
        with _lock:
            _checkouts[_thread()] += 1


def _time_commits() -> None:
    """Every dialect in use commits through ``DefaultDialect.do_commit``: time it per thread."""
    from sqlalchemy.engine.default import DefaultDialect

    original = DefaultDialect.do_commit

    def do_commit(self: DefaultDialect, dbapi_connection: Any) -> None:
        start = time.perf_counter()
        original(self, dbapi_connection)
        took = time.perf_counter() - start
        with _lock:
            _commits[_thread()].append(took)
            if took > _SLOW_S:
                _slow.append((start, took, _thread(), "COMMIT", None))

    DefaultDialect.do_commit = do_commit  # type: ignore[method-assign]


def _dump() -> None:
    path = os.environ.get("BENCH_TRACE_FILE")
    if not path:
        return
    with _lock:
        data = {
            "spans": {k: v for k, v in _spans.items()},
            "statements": [
                {"thread": t, "statement": s, "count": len(d), "total_s": sum(d)}
                for (t, s), d in sorted(_statements.items())
            ],
            "slow_statements": _slow,
            "connects": _connects,
            "gc": [g for g in _gc if g[2] == 2 or g[1] > 0.005],
            "checkouts": dict(_checkouts),
            "commits": {t: len(d) for t, d in _commits.items()},
            "commit_s": {t: sum(d) for t, d in _commits.items()},
        }
    with open(path, "w") as fh:
        json.dump(data, fh)


def _name_native_threads() -> None:
    """Give each thread its Python name in the kernel, so /proc shows whose CPU is whose."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        name = self.name.removeprefix("botyard-").encode()[:15]
        libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
        original(self)

    threading.Thread.run = run  # type: ignore[method-assign]


_gc: list[tuple[float, float, int, int]] = []  # (start, dur, generation, collected)
_gc_start = [0.0]


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    else:
        now = time.perf_counter()
        _gc.append((_gc_start[0], now - _gc_start[0], info["generation"], info["collected"]))


def install() -> None:
    import gc

    gc.callbacks.append(_gc_callback)
    _name_native_threads()
    _wrap_claim()
    _wrap_finish()
    _wrap_writer()
    _wrap_slot()
    _sql_events()
    _time_commits()
    atexit.register(_dump)


if __name__ == "__main__":
    install()
    from botyard.cli import main

    main()
