"""attempts.ready_at (dispatch latency) and privacy requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "privacy_requests",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=320), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=150), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("outcome", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_privacy_requests_reference")),
    )
    op.create_index("ix_privacy_requests_status", "privacy_requests", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_privacy_requests_status", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("ready_at")
