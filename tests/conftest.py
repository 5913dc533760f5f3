"""Shared fixtures: every store test runs against a fresh SQLite file and a real PostgreSQL.

PostgreSQL: one throw-away database per test session, emptied between tests. A missing server
skips those tests on a laptop but fails them in CI (``CI`` set), so they never pass silently.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from botyard.bus import Bus, open_bus
from botyard.bus.wakeups import Wakeups
from botyard.store import SqlStore, open_store
from botyard.store.tables import metadata
from tests.tools import RedisServer, redis_server_binary

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TABLES = ", ".join(table.name for table in metadata.sorted_tables)


def _conninfo(url: str) -> str:
    """A libpq URL for psycopg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated, empty database of its own on the server named by BOTYARD_TEST_POSTGRES_URL."""
    base = os.environ.get("BOTYARD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    name = f"botyard_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(_conninfo(base), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {make_url(base)!r}: {exc}".strip()
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: the postgres tests must run here)")
        pytest.skip(message)
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        open_store(url).close()  # migrate once; tests only empty the tables
        yield url
    finally:
        with psycopg.connect(_conninfo(base), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate(url: str) -> None:
    """Empty every table of the session's PostgreSQL database."""
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a new SQLite file, or the session's emptied Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/botyard.db"
    url: str = request.getfixturevalue("postgres_url")
    truncate(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def bus(store_url: str) -> Iterator[Bus]:
    opened = open_bus(store_url)
    try:
        yield opened
    finally:
        opened.close()
        folder = getattr(opened, "folder", None)
        if isinstance(folder, Path):  # the local bus may fall back to a folder in /tmp
            with contextlib.suppress(OSError):
                folder.rmdir()


WaitUntil = Callable[..., object]


def _wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@pytest.fixture
def wait_until() -> WaitUntil:
    """``wait_until(predicate, timeout=10)``: poll until truthy, fail the test on timeout."""
    return _wait_until


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("BOTYARD_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture
def redis_client() -> Iterator[object]:
    """A client of the Redis (or Valkey) named by BOTYARD_TEST_REDIS_URL; skipped on a laptop
    without one, failed in CI. Tests use key prefixes of their own and clean them up."""
    import redis

    url = redis_url()
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        message = f"Redis is not reachable at {url}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: the redis tests must run here)")
        pytest.skip(message)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_client: object) -> Iterator[str]:
    """A key prefix of the test's own (``BOTYARD_REDIS_PREFIX``); its keys are removed after."""
    name = f"test-{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        keys = list(redis_client.scan_iter(match=f"{name}:*"))  # type: ignore[attr-defined]
        if keys:
            redis_client.delete(*keys)  # type: ignore[attr-defined]


@pytest.fixture(params=["bus", pytest.param("redis", marks=pytest.mark.redis)])
def wakeups(request: pytest.FixtureRequest, bus: Bus) -> Iterator[Wakeups]:
    """How jobs reach workers: wake-ups on the store's bus, or entries on Redis lists."""
    if request.param == "bus":
        yield Wakeups(bus)
        return
    from botyard.bus.redis_events import connect
    from botyard.bus.redis_lists import RedisJobLists

    request.getfixturevalue("redis_client")  # skipped (or failed in CI) without a server
    prefix: str = request.getfixturevalue("redis_prefix")
    lists = RedisJobLists(connect(redis_url()), prefix=prefix)
    try:
        yield Wakeups(bus, lists)
    finally:
        lists.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis server of the test's own, on a free port: flush it, kill it, restart it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    server = RedisServer(redis_server_binary(), port)
    server.start()
    try:
        yield server
    finally:
        server.kill()
