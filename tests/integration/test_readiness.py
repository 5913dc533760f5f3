"""``/health/ready`` writes to the store and looks at the disk; it answers within seconds."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import event, make_url, select
from tests.api_helpers import MakeApi

from botyard.orchestrator.health import READY_CACHE_SECONDS
from botyard.store.tables import leases


@contextmanager
def _write_lock(store_url: str) -> Iterator[None]:
    """Another client holding what the probe needs to write: SQLite's lock, the leases table."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        db = sqlite3.connect(url.database or "", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        conn.execute("LOCK TABLE leases IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def test_ready_commits_a_probe_write_and_leaves_nothing(make_api: MakeApi, store_url: str) -> None:
    api = make_api(store_url)
    ready = api.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"store": "ok", "disk": "ok"}
    engine = api.app.state.runtime.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        names = conn.execute(select(leases.c.name)).scalars().all()
    assert not [name for name in names if name.startswith("readiness")]


def test_a_store_that_cannot_take_a_write_is_not_ready(make_api: MakeApi, store_url: str) -> None:
    api = make_api(store_url)
    assert api.get("/health/ready").status_code == 200
    time.sleep(READY_CACHE_SECONDS)  # past the answer just taken
    with _write_lock(store_url):
        started = time.monotonic()
        locked = api.get("/health/ready")
        took = time.monotonic() - started
    assert locked.status_code == 503, locked.text
    assert locked.json()["checks"]["store"] == "cannot write: no write lock within 2 s"
    assert took < 10, f"readiness took {took:.1f} s"  # not the store's 30 s lock wait
    time.sleep(READY_CACHE_SECONDS)
    assert api.get("/health/ready").status_code == 200


def test_too_little_room_in_the_data_directory_is_not_ready(make_api: MakeApi) -> None:
    api = make_api(BOTYARD_MIN_FREE_BYTES=str(2**60))
    answer = api.get("/health/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["checks"]["store"] == "ok"
    assert body["checks"]["disk"].startswith("the data directory has ")
    assert "readiness asks for (BOTYARD_MIN_FREE_BYTES)" in body["detail"]
    assert make_api(BOTYARD_MIN_FREE_BYTES="0").get("/health/ready").status_code == 200


def test_a_burst_of_readiness_calls_makes_one_probe_write(
    make_api: MakeApi, store_url: str
) -> None:
    # No login is needed for readiness: each call's write once let a flood hold SQLite's
    # write lock on the API's threads.
    api = make_api(store_url)
    engine = api.app.state.runtime.store.engine  # type: ignore[attr-defined]
    probes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO LEASES"):
            probes.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    callers = 20
    start = threading.Barrier(callers)
    answers: list[int] = []

    def call() -> None:
        start.wait()
        answers.append(api.get("/health/ready").status_code)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200] * callers
    assert len(probes) == 1, f"{len(probes)} probe writes for {callers} calls"
    time.sleep(READY_CACHE_SECONDS)  # the answer stands for a while, not for good
    assert api.get("/health/ready").status_code == 200
    assert len(probes) == 2
