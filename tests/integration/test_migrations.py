"""The Alembic migrations build exactly the tables ``store/tables.py`` declares, on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from botyard.store import SqlStore
from botyard.store.accounts import UserExists, Users
from botyard.store.engine import build_engine, upgrade
from botyard.store.tables import metadata


def test_migrations_match_the_declared_tables(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    # Partial-index predicates are not compared by autogenerate; everything else must match.
    assert differences == []


def test_0008_keeps_the_users_and_never_reuses_a_deleted_id(tmp_path: Path) -> None:
    # SQLite rebuilds the table (AUTOINCREMENT); its rows and constraints must survive.
    engine = build_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, disabled, created_at)"
                " VALUES ('ops', 'h', 'operator', false, '2026-12-01 00:00:00')"
            )
        )
    upgrade(engine)
    users = Users(engine)
    ops = users.get("ops")
    assert ops is not None and (ops.id, ops.role, ops.token_version) == (1, "operator", 0)
    with pytest.raises(UserExists):
        users.create("ops", "h", "viewer")
    users.delete("ops")
    assert users.create("ops", "h", "viewer").id == 2
    engine.dispose()
