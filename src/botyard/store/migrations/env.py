"""Alembic environment: runs on the connection Botyard hands it (see ``store.engine.upgrade``)."""

from __future__ import annotations

from alembic import context

from botyard.store.engine import build_engine
from botyard.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic` run by hand with -x url=...
    url = context.get_x_argument(as_dictionary=True)["url"]
    with build_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
