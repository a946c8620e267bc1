"""Accounts: users, registered sites and their viewers, sessions, API keys, share links.

Self-contained: the column types are frozen here (never imported from db/models.py).
Secrets are stored only as HMAC-SHA256 hex digests (64 ASCII characters).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from db.migrations.frozen import BIG_INT, TIMESTAMP
from db.migrations.frozen import MYSQL_TABLE_ARGS as TABLE_ARGS

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The frozen types of 0001/0002 (never edited) plus this revision's own hash column.
ID = BIG_INT
HASH = sa.String(64).with_variant(
    mysql.CHAR(64, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)
SITE = sa.String(255)


def _at(*names: str, nullable: bool = False) -> list[sa.Column[Any]]:
    """Timestamp columns (naive UTC)."""
    return [sa.Column(name, TIMESTAMP, nullable=nullable) for name in names]


def _tables() -> dict[str, list[Any]]:
    return {
        "users": [
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("email", sa.String(254), nullable=False, unique=True),
            sa.Column("password_hash", sa.String(255), nullable=False),
            sa.Column("is_admin", sa.Boolean, nullable=False),
            *_at("created_at"),
        ],
        "sites": [
            sa.Column("site_id", SITE, primary_key=True),
            sa.Column("owner_id", ID, nullable=False, index=True),
            *_at("created_at"),
        ],
        "site_viewers": [
            sa.Column("site_id", SITE, primary_key=True),
            sa.Column("user_id", ID, primary_key=True, index=True),
        ],
        "auth_sessions": [
            sa.Column("token_hash", HASH, primary_key=True),
            sa.Column("user_id", ID, nullable=False, index=True),
            *_at("created_at", "last_seen_at", "expires_at"),
        ],
        "api_keys": [
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("user_id", ID, nullable=False, index=True),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("prefix", sa.String(16), nullable=False),
            sa.Column("key_hash", HASH, nullable=False, unique=True),
            *_at("created_at"),
            *_at("last_used_at", "revoked_at", nullable=True),
        ],
        "api_key_sites": [
            sa.Column("key_id", ID, primary_key=True),
            sa.Column("site_id", SITE, primary_key=True),
        ],
        "share_links": [
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("site_id", SITE, nullable=False, index=True),
            sa.Column("prefix", sa.String(16), nullable=False),
            sa.Column("token_hash", HASH, nullable=False, unique=True),
            *_at("created_at"),
            *_at("revoked_at", nullable=True),
        ],
        "login_tokens": [
            sa.Column("token_hash", HASH, primary_key=True),
            sa.Column("user_id", ID, nullable=False),
            *_at("expires_at"),
        ],
    }


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns, **TABLE_ARGS)


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)
