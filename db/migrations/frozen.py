"""Column types as the revisions 0001 and 0002 created them, frozen: never edit.

Revisions must not import live types from :mod:`db.models`: editing a model would
silently change what an old revision creates. A revision that needs another type
defines it in its own file. ``tests/db/test_migrations.py`` checks that the
migrated schema equals the models.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
BIG_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
HOUR = sa.DateTime().with_variant(mysql.DATETIME(), "mysql", "mariadb")
DIGEST = sa.String(32).with_variant(
    mysql.CHAR(32, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)
