"""Visitors and visits: the enrichment columns of ``events`` and their aggregates.

Existing rows and the original columns are untouched (every new column is nullable);
the new aggregate tables start empty, and ``analytics rebuild-rollups`` fills them
from ``events`` for days stored before this revision (those events have no visitor,
so they count no visitors or visits). Self-contained: column types are frozen here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from db.migrations.frozen import BIG_INT, DIGEST, HOUR
from db.migrations.frozen import MYSQL_TABLE_ARGS as TABLE_ARGS

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SITE = sa.String(255)
PROPERTY = sa.String(306)
LABEL = sa.String(255)
DIMENSIONS = (
    ("source", LABEL),
    ("referrer", sa.String(500)),
    ("utm_source", LABEL),
    ("utm_medium", LABEL),
    ("utm_campaign", LABEL),
    ("utm_content", LABEL),
    ("utm_term", LABEL),
    ("country", sa.String(2)),
    ("region", LABEL),
    ("city", LABEL),
    ("browser", LABEL),
    ("browser_version", LABEL),
    ("os", LABEL),
    ("os_version", LABEL),
    ("device", LABEL),
)
# The dimensions of a visitor-day's profile: country to device.
PROFILE_START = 7


def _event_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("visitor_id", DIGEST, nullable=True),
        sa.Column("visit_id", BIG_INT, nullable=True),
        sa.Column("visit_seq", sa.Integer, nullable=True),
        *[sa.Column(name, kind, nullable=True) for name, kind in DIMENSIONS],
        sa.Column("props", sa.Text, nullable=True),
    ]


def _figures(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(name, BIG_INT, nullable=False) for name in names]


def _visitor_set(*key: sa.Column[Any]) -> list[Any]:
    return [
        sa.Column("site_id", SITE, primary_key=True),
        *key,
        sa.Column("visitor_hash", DIGEST, primary_key=True),
        sa.Column("token", BIG_INT, nullable=False),
    ]


def _tables() -> dict[str, list[Any]]:
    def site() -> sa.Column[Any]:
        return sa.Column("site_id", SITE, primary_key=True)

    def day() -> sa.Column[Any]:
        return sa.Column("day", sa.Date, primary_key=True)

    def hour() -> sa.Column[Any]:
        return sa.Column("hour", HOUR, primary_key=True)

    def value_key() -> list[sa.Column[Any]]:
        return [
            sa.Column("property", PROPERTY, primary_key=True),
            sa.Column("value_hash", DIGEST, primary_key=True),
        ]

    return {
        "rollup_day_visits": [
            site(),
            day(),
            *_figures("visitors", "visits", "bounces", "duration", "pageviews", "bots"),
        ],
        "rollup_hour_visits": [site(), hour(), *_figures("visitors", "visits")],
        "rollup_day_visitors": _visitor_set(day()),
        "rollup_hour_visitors": _visitor_set(hour()),
        "rollup_day_values": [
            site(),
            day(),
            *value_key(),
            sa.Column("value", sa.String(2000), nullable=False),
            *_figures("visitors", "visits", "bounces", "duration", "pageviews", "events"),
        ],
        "rollup_day_value_visitors": _visitor_set(day(), *value_key()),
        "rollup_day_visit_profiles": [
            site(),
            day(),
            sa.Column("visitor_hash", DIGEST, primary_key=True),
            sa.Column("token", BIG_INT, nullable=False),
            *[
                sa.Column(f"{name}_hash", DIGEST, nullable=False)
                for name, _ in DIMENSIONS[PROFILE_START:]
            ],
        ],
        "rollup_day_exit_visitors": [
            site(),
            day(),
            sa.Column("value_hash", DIGEST, primary_key=True),
            sa.Column("visitor_hash", DIGEST, primary_key=True),
            *_figures("visits"),
        ],
    }


_TOKEN_INDEXED = ("rollup_day_visitors", "rollup_hour_visitors", "rollup_day_value_visitors")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("events")}
    with op.batch_alter_table("events") as batch:
        for column in _event_columns():
            if column.name not in present:
                batch.add_column(column)
    existing = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns, **TABLE_ARGS)
            if name in _TOKEN_INDEXED:
                op.create_index(f"ix_{name}_token", name, ["token"])


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)
    with op.batch_alter_table("events") as batch:
        for column in reversed(_event_columns()):
            batch.drop_column(column.name)
