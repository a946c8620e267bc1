"""Rights bound to a site's registration, keys that say they read every site, session expiry
index.

* ``sites`` gets an ``id`` that is never given out twice (AUTOINCREMENT on SQLite too);
  ``site_id`` stays unique.
* ``site_viewers``, ``api_key_sites`` and ``share_links`` name that id (``site_ref``)
  instead of the bare name, so a name registered again after a removal is a new
  registration that no earlier credential reads. Rows of a name that is not registered
  are dropped: under this rule they could only ever read nothing (a share link made for
  an unregistered site stops working; register the site and share it again).
* ``api_keys.all_sites``: true for a key that had no scope rows (it read what its user
  reads, and still does); false for a limited key, which now reads nothing once its
  sites are gone instead of falling back to every site.
* ``auth_sessions.expires_at`` is indexed: expired sessions are deleted at each sign-in.

Self-contained: column types are frozen here (never imported from db/models.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from db.migrations.frozen import BIG_INT, TIMESTAMP
from db.migrations.frozen import MYSQL_TABLE_ARGS as TABLE_ARGS

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = BIG_INT
SITE = sa.String(255)
HASH = sa.String(64).with_variant(
    mysql.CHAR(64, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)
# The tables rebuilt, each created as <name>_v5, filled, then renamed over the old one.
REBUILT = ("sites", "site_viewers", "api_key_sites", "share_links")


def _new_tables() -> dict[str, tuple[list[Any], dict[str, Any]]]:
    return {
        "sites": (
            [
                sa.Column("id", ID, primary_key=True, autoincrement=True),
                sa.Column("site_id", SITE, nullable=False, unique=True),
                sa.Column("owner_id", ID, nullable=False),
                sa.Column("created_at", TIMESTAMP, nullable=False),
            ],
            {"sqlite_autoincrement": True},
        ),
        "site_viewers": (
            [
                sa.Column("site_ref", ID, primary_key=True),
                sa.Column("user_id", ID, primary_key=True),
            ],
            {},
        ),
        "api_key_sites": (
            [
                sa.Column("key_id", ID, primary_key=True),
                sa.Column("site_ref", ID, primary_key=True),
            ],
            {},
        ),
        "share_links": (
            [
                sa.Column("id", ID, primary_key=True, autoincrement=True),
                sa.Column("site_ref", ID, nullable=False),
                sa.Column("prefix", sa.String(16), nullable=False),
                sa.Column("token_hash", HASH, nullable=False, unique=True),
                sa.Column("created_at", TIMESTAMP, nullable=False),
                sa.Column("revoked_at", TIMESTAMP, nullable=True),
            ],
            {},
        ),
    }


# Each rebuilt table's rows, copied from the old one; a right keeps only the rows of a
# registered name (joined to the new registration by that name).
COPIES = {
    "sites": "INSERT INTO sites_v5 (site_id, owner_id, created_at)"
    " SELECT site_id, owner_id, created_at FROM sites ORDER BY created_at, site_id",
    "site_viewers": "INSERT INTO site_viewers_v5 (site_ref, user_id)"
    " SELECT s.id, v.user_id FROM site_viewers v JOIN sites_v5 s ON s.site_id = v.site_id",
    "api_key_sites": "INSERT INTO api_key_sites_v5 (key_id, site_ref)"
    " SELECT k.key_id, s.id FROM api_key_sites k JOIN sites_v5 s ON s.site_id = k.site_id",
    "share_links": "INSERT INTO share_links_v5"
    " (id, site_ref, prefix, token_hash, created_at, revoked_at)"
    " SELECT l.id, s.id, l.prefix, l.token_hash, l.created_at, l.revoked_at"
    " FROM share_links l JOIN sites_v5 s ON s.site_id = l.site_id",
}
# The indexes db/models.py declares on the rebuilt tables (named as create_all names them).
INDEXES = {
    "sites": [("ix_sites_owner_id", ["owner_id"])],
    "site_viewers": [("ix_site_viewers_user_id", ["user_id"])],
    "api_key_sites": [("ix_api_key_sites_site_ref", ["site_ref"])],
    "share_links": [("ix_share_links_site_ref", ["site_ref"])],
}


def upgrade() -> None:
    # A key with no scope row read every site of its user: say so, before the scopes move.
    op.add_column("api_keys", sa.Column("all_sites", sa.Boolean, nullable=True))
    op.execute(
        "UPDATE api_keys SET all_sites = CASE WHEN EXISTS"
        " (SELECT 1 FROM api_key_sites k WHERE k.key_id = api_keys.id) THEN 0 ELSE 1 END"
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("all_sites", existing_type=sa.Boolean, nullable=False)

    for name, (columns, options) in _new_tables().items():
        op.create_table(f"{name}_v5", *columns, **TABLE_ARGS, **options)
    for name in REBUILT:
        op.execute(COPIES[name])
    for name in REBUILT:
        op.drop_table(name)
        op.rename_table(f"{name}_v5", name)
        for index, columns in INDEXES[name]:
            op.create_index(index, name, columns)

    op.create_index("ix_auth_sessions_expires_at", "auth_sessions", ["expires_at"])


def _old_tables() -> dict[str, list[Any]]:
    return {
        "sites": [
            sa.Column("site_id", SITE, primary_key=True),
            sa.Column("owner_id", ID, nullable=False),
            sa.Column("created_at", TIMESTAMP, nullable=False),
        ],
        "site_viewers": [
            sa.Column("site_id", SITE, primary_key=True),
            sa.Column("user_id", ID, primary_key=True),
        ],
        "api_key_sites": [
            sa.Column("key_id", ID, primary_key=True),
            sa.Column("site_id", SITE, primary_key=True),
        ],
        "share_links": [
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("site_id", SITE, nullable=False),
            sa.Column("prefix", sa.String(16), nullable=False),
            sa.Column("token_hash", HASH, nullable=False, unique=True),
            sa.Column("created_at", TIMESTAMP, nullable=False),
            sa.Column("revoked_at", TIMESTAMP, nullable=True),
        ],
    }


OLD_COPIES = {
    "sites": "INSERT INTO sites_v4 (site_id, owner_id, created_at)"
    " SELECT site_id, owner_id, created_at FROM sites",
    "site_viewers": "INSERT INTO site_viewers_v4 (site_id, user_id)"
    " SELECT s.site_id, v.user_id FROM site_viewers v JOIN sites s ON s.id = v.site_ref",
    "api_key_sites": "INSERT INTO api_key_sites_v4 (key_id, site_id)"
    " SELECT k.key_id, s.site_id FROM api_key_sites k JOIN sites s ON s.id = k.site_ref",
    "share_links": "INSERT INTO share_links_v4"
    " (id, site_id, prefix, token_hash, created_at, revoked_at)"
    " SELECT l.id, s.site_id, l.prefix, l.token_hash, l.created_at, l.revoked_at"
    " FROM share_links l JOIN sites s ON s.id = l.site_ref",
}
OLD_INDEXES = {
    "sites": [("ix_sites_owner_id", ["owner_id"])],
    "site_viewers": [("ix_site_viewers_user_id", ["user_id"])],
    "api_key_sites": [],
    "share_links": [("ix_share_links_site_id", ["site_id"])],
}


def downgrade() -> None:
    """Back to bare names. A key limited to sites that are all gone reads every site of
    its user again under 0004's rule, so such keys are revoked here."""
    op.drop_index("ix_auth_sessions_expires_at", "auth_sessions")
    op.execute(
        "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE all_sites = 0"
        " AND revoked_at IS NULL AND NOT EXISTS"
        " (SELECT 1 FROM api_key_sites k WHERE k.key_id = api_keys.id)"
    )
    for name, columns in _old_tables().items():
        op.create_table(f"{name}_v4", *columns, **TABLE_ARGS)
    for name in REBUILT:
        op.execute(OLD_COPIES[name])
    for name in REBUILT:
        op.drop_table(name)
        op.rename_table(f"{name}_v4", name)
        for index, columns in OLD_INDEXES[name]:
            op.create_index(index, name, columns)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("all_sites")
