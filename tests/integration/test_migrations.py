"""The Alembic migrations build exactly the tables ``store/tables.py`` declares, on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from botyard.store import SqlStore
from botyard.store.tables import metadata


def test_migrations_match_the_declared_tables(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    # Partial-index predicates are not compared by autogenerate; everything else must match.
    assert differences == []
