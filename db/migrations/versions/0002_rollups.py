"""Rollup tables kept by the worker, read by /stats (see db/rollups/).

Creating them leaves them empty: on a database that already holds events, run
``analytics rebuild-rollups`` once after the upgrade to fill them from ``events``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from db.migrations.frozen import BIG_INT as Count
from db.migrations.frozen import DIGEST as Digest
from db.migrations.frozen import HOUR as Hour
from db.migrations.frozen import MYSQL_TABLE_ARGS

BUCKETS = (("day", sa.Date()), ("hour", Hour))

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key() -> list[sa.Column[Any]]:
    return [
        sa.Column("site_id", sa.String(255), primary_key=True),
        sa.Column("scope", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("event_type", sa.String(255), primary_key=True),
    ]


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())

    def create(name: str, *columns: sa.Column[Any]) -> None:
        if name not in tables:
            op.create_table(name, *columns, **MYSQL_TABLE_ARGS)

    for bucket, kind in BUCKETS:
        key = (*_key(), sa.Column(bucket, kind, primary_key=True))
        events = sa.Column("events", Count, nullable=False)
        create(f"rollup_{bucket}s", *key, events, sa.Column("users", Count, nullable=False))
        key = (*_key(), sa.Column(bucket, kind, primary_key=True))
        digest = sa.Column("user_hash", Digest, primary_key=True)
        create(f"rollup_{bucket}_users", *key, digest, sa.Column("token", Count, nullable=False))
    for name in ("rollup_day_users", "rollup_hour_users"):
        indexes = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(name)}
        if f"ix_{name}_token" not in indexes:
            op.create_index(f"ix_{name}_token", name, ["token"])
    create(
        "rollup_day_paths",
        *_key(),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("path_hash", Digest, primary_key=True),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("views", Count, nullable=False),
    )
    create(
        "rollup_sites",
        sa.Column("site_id", sa.String(255), primary_key=True),
        sa.Column("events", Count, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "rollup_sites",
        "rollup_day_paths",
        "rollup_hour_users",
        "rollup_day_users",
        "rollup_hours",
        "rollup_days",
    ):
        op.drop_table(name)
