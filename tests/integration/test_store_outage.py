"""The store away: 503 with Retry-After (never 500), and back to normal once it is back.

PostgreSQL is made unreachable for real: the test's own database stops taking connections and
its open ones are terminated, as a restart or a fail-over does. SQLite's outage is a database
locked by another process. Bugs (a table that is not there) stay what they are: 500s.
Failing statements keep their parameters (payloads: personal data) out of the exception text.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from tests.api_helpers import MakeApi, assert_error_shape, token
from tests.conftest import DEFAULT_POSTGRES_URL, _conninfo

from botyard.errors import StoreUnavailable
from botyard.store import open_store
from botyard.store.engine import build_engine
from botyard.store.records import NewJob


@pytest.fixture
def outage_database(postgres_url: str) -> Iterator[tuple[str, psycopg.Connection]]:
    """A database of the test's own (so that cutting it off leaves the others alone), and an
    administrator's connection to the server to cut it off with."""
    base = os.environ.get("BOTYARD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    name = f"botyard_outage_{secrets.token_hex(6)}"
    with psycopg.connect(_conninfo(base), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False), admin
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cut_off(admin: psycopg.Connection, url: str, *, allowed: bool) -> None:
    name = make_url(url).database
    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )


@pytest.mark.postgres
def test_postgres_away_answers_503_with_retry_after_then_recovers(
    outage_database: tuple[str, psycopg.Connection],  # first: dropped after the app stops
    make_api: MakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, admin = outage_database
    api = make_api(url)
    headers = token(api, "admin", "admin-password")
    body = {"automation": "accept.quick", "payload": {"n": 1}}
    assert api.post("/jobs", json=body, headers=headers).status_code == 201

    cut_off(admin, url, allowed=False)
    answers = [
        api.get("/jobs", headers=headers),
        api.get("/jobs/1", headers=headers),
        api.post("/jobs", json=body, headers=headers),
        api.get("/audit", headers=headers),
        api.post("/token", data={"username": "admin", "password": "admin-password"}),
    ]
    for answer in answers:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        assert answer.headers["Retry-After"] == "5"
        assert_error_shape(answer.json())
        assert answer.json()["error_type"] == "StoreUnavailable"
    assert not [r for r in caplog.records if "answered 500" in r.getMessage()]

    cut_off(admin, url, allowed=True)
    listing = api.get("/jobs", headers=headers)
    assert listing.status_code == 200 and listing.json()["total"] == 1  # nothing half-stored
    assert api.post("/jobs", json=body, headers=headers).status_code == 201


@pytest.mark.postgres
def test_the_dashboard_says_503_too(
    outage_database: tuple[str, psycopg.Connection], make_api: MakeApi
) -> None:
    url, admin = outage_database
    api = make_api(url)
    answer = api.post(
        "/ui/login",
        data={"username": "admin", "password": "admin-password"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cut_off(admin, url, allowed=False)
    page = api.get("/ui/jobs")
    assert page.status_code == 503 and "<html" in page.text
    cut_off(admin, url, allowed=True)
    assert api.get("/ui/jobs").status_code == 200


@pytest.mark.postgres
def test_a_bug_is_no_outage(postgres_url: str) -> None:
    engine = build_engine(postgres_url)
    try:
        with pytest.raises(ProgrammingError), engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()


def test_failing_statements_keep_their_parameters_to_themselves(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The exception of a failing statement names the statement, never the values it carried
    (payloads: personal data, in a log out of reach of the privacy erasure)."""
    store = open_store(store_url)
    secret = "Jane Doe, 8001015009087"
    try:
        # The servers' own messages name no value here (PostgreSQL's for a broken constraint
        # would: "Failing row contains ..."), so what is left is what SQLAlchemy adds.
        with pytest.raises(Exception) as caught, store.engine.begin() as conn:
            conn.execute(text("SELECT :name FROM no_such_table"), {"name": secret})
        logging.getLogger("botyard.api").error("failed", exc_info=caught.value)
        assert "SELECT" in str(caught.value) and secret not in str(caught.value)
        assert secret not in caplog.text
    finally:
        store.close()


def test_json_with_a_nul_or_a_lone_surrogate_never_fails_a_write(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What does not come through the API (an automation's result, say): PostgreSQL's jsonb
    cannot hold either and its error quoted the document, so the store writes U+FFFD instead;
    SQLite holds a NUL and reads a lone surrogate back as U+FFFD."""
    store = open_store(store_url)
    secret = "Jane Doe, 8001015009087"
    try:
        job, _ = store.submit(
            NewJob(
                automation="a.b", payload={"nul": f"{secret}\x00", "half": "\ud83d", "\udc00": 1}
            )
        )
        payload = store.get_job(job.id).payload
        nul = "\x00" if store.engine.dialect.name == "sqlite" else "\ufffd"
        assert payload == {"nul": f"{secret}{nul}", "half": "\ufffd", "\ufffd": 1}
        assert secret not in caplog.text
    finally:
        store.close()


def test_sqlite_locked_by_another_process_is_an_outage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/botyard.db"
    store = open_store(url)
    holder = sqlite3.connect(tmp_path / "botyard.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held
        with pytest.raises(StoreUnavailable) as caught, store.engine.connect() as conn:
            conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=50")  # not 30 s
            conn.execute(text("DELETE FROM jobs"))
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        holder.execute("ROLLBACK")
        with store.engine.connect() as conn, pytest.raises(OperationalError):  # a bug: no outage
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        holder.close()
        store.close()
