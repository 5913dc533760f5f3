"""jobs.concurrency_key, _limit and _slot: at most limit running jobs per key, one per slot

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_RUNNING_WITH_KEY = "status = 'running' AND concurrency_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("concurrency_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("concurrency_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("concurrency_slot", sa.Integer(), nullable=True))
    op.create_index(
        "uq_jobs_concurrency_slot",
        "jobs",
        ["concurrency_key", "concurrency_slot"],
        unique=True,
        postgresql_where=sa.text(_RUNNING_WITH_KEY),
        sqlite_where=sa.text(_RUNNING_WITH_KEY),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_concurrency_slot", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("concurrency_slot")
        batch.drop_column("concurrency_limit")
        batch.drop_column("concurrency_key")
