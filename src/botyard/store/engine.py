"""Engines for SQLite (WAL, one writer at a time, no lost writes) and PostgreSQL, and migrations.

Both engines keep SQL parameters out of their exceptions (``hide_parameters``): a failing
statement's parameters are job payloads and results, personal data that a log must not keep
out of reach of the privacy erasure. And both raise ``StoreUnavailable`` when the database
cannot be reached or cannot write, so that callers can tell an outage from a bug.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, ExceptionContext, create_engine, event, make_url, text

from botyard.errors import StoreUnavailable
from botyard.unstorable import LONE_SURROGATE, UNSTORABLE

_PG_MIGRATION_LOCK = 0x626F7479617264  # "botyard"; any process migrating holds it
# SQLite's primary result codes for a database that is busy, locked, full, unreadable or
# read-only: an outage. Its other errors (no such table, a syntax error) are bugs.
_SQLITE_UNAVAILABLE = {5, 6, 8, 10, 13, 14, 15}  # BUSY LOCKED READONLY IOERR FULL CANTOPEN PROTOCOL
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def build_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> Engine:
    """An engine for ``url``. SQLite gets WAL and ``BEGIN IMMEDIATE`` for write transactions.

    ``pre_ping=False`` saves a round trip per transaction, for callers (the worker) that retry
    a transaction that failed on a dropped connection anyway.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
            hide_parameters=True,
            json_deserializer=_sqlite_json,
        )
        _sqlite_setup(engine)
    else:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=pre_ping,
            hide_parameters=True,
            json_serializer=jsonb_text,
        )
    event.listen(engine, "handle_error", _unavailable)
    return engine


def _unavailable(context: ExceptionContext) -> None:
    """Raise ``StoreUnavailable`` for an error that says the database is away, not a bug."""
    if context.is_pre_ping:
        return  # the pool replaces a dead connection by itself
    error = context.original_exception
    if context.is_disconnect:
        raise StoreUnavailable() from error
    if context.dialect.name == "sqlite":
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _SQLITE_UNAVAILABLE:
            raise StoreUnavailable() from error
    elif isinstance(error, context.dialect.loaded_dbapi.OperationalError):
        # psycopg's: refused or lost connections, shutdowns, too many clients, a full disk,
        # cancelled statements and lost serialisations, which a later try can get through.
        raise StoreUnavailable() from error


def _sqlite_json(text: str) -> Any:
    """JSON as SQLite keeps it. Rows stored before the API refused lone surrogates may hold
    some (escapes such as ``\\ud83d``): they read back as U+FFFD, as no answer could carry them."""
    document = json.loads(text)
    if _SURROGATE_ESCAPE.search(text) is None:
        return document
    return _replaced(document, LONE_SURROGATE)


def jsonb_text(value: Any) -> str:
    """JSON for ``jsonb``, which cannot hold NUL or a lone surrogate: each becomes U+FFFD.

    The API refuses both before anything is stored; what else writes JSON (an automation's
    result, an error) must not fail on them either: the server's error would quote the
    document (personal data, in a log), and a worker's write that always fails is retried for
    good.
    """
    text = json.dumps(value)
    if "\\u0000" in text or _SURROGATE_ESCAPE.search(text):
        return json.dumps(_replaced(value, UNSTORABLE))
    return text


def _replaced(value: Any, characters: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return characters.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replaced(item, characters) for item in value]
    if isinstance(value, dict):
        return {_replaced(k, characters): _replaced(v, characters) for k, v in value.items()}
    return value


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself, so writes take the lock up front
        # instead of failing on a lock upgrade half-way through a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "botyard.store:migrations")
    config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "sqlite":
        database = engine.url.database or ""
        lock_path = Path(f"{database}.migrate.lock") if database not in ("", ":memory:") else None
        with contextlib.ExitStack() as stack:
            if lock_path is not None:
                handle = stack.enter_context(lock_path.open("a"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            with engine.connect() as conn:
                yield conn
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; safe when several processes start at once."""
    with _migration_lock(engine) as conn:
        command.upgrade(alembic_config(conn), revision)
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
