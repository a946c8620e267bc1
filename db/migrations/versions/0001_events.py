"""The events table and the batch ledger.

An ``events`` table left by the original Flask app (created by its
``create_tables.py``) is adopted as it is: only what is missing is created.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations.frozen import BIG_INT as Id
from db.migrations.frozen import MYSQL_TABLE_ARGS
from db.migrations.frozen import TIMESTAMP as Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "events" not in tables:
        op.create_table(
            "events",
            sa.Column("id", Id, primary_key=True, autoincrement=True),
            sa.Column("site_id", sa.String(255), nullable=False),
            sa.Column("event_type", sa.String(255), nullable=False),
            sa.Column("path", sa.String(500), nullable=True),
            sa.Column("user_id", sa.String(255), nullable=True),
            sa.Column("timestamp", Timestamp, nullable=False),
            **MYSQL_TABLE_ARGS,
        )
    indexes = (
        {ix["name"] for ix in inspector.get_indexes("events")} if "events" in tables else set()
    )
    if "ix_events_site_timestamp" not in indexes:
        op.create_index("ix_events_site_timestamp", "events", ["site_id", "timestamp"])
    if "ingest_batches" not in tables:
        op.create_table(
            "ingest_batches",
            sa.Column("batch_id", sa.String(64), primary_key=True),
            sa.Column("events", sa.Integer, nullable=False),
            sa.Column("committed_at", Timestamp, nullable=False),
            **MYSQL_TABLE_ARGS,
        )
        op.create_index("ix_ingest_batches_committed_at", "ingest_batches", ["committed_at"])


def downgrade() -> None:
    op.drop_table("ingest_batches")
    op.drop_index("ix_events_site_timestamp", table_name="events")
    op.drop_table("events")
