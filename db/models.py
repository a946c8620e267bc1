"""Table definitions (SQLAlchemy Core: bulk inserts of plain dicts, no ORM overhead).

``events`` is the original README's table: id, site_id, event_type, path, user_id,
timestamp with the same nullability. Two deliberate widenings: ``id`` is BIGINT on
MySQL (a 32-bit INT runs out after 2.1 billion events, which "millions a day"
reaches), and ``timestamp`` keeps microseconds. Tables are utf8mb4 on
MySQL/MariaDB/TiDB, or a single emoji in a path fails the whole batch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

MYSQL_TABLE_ARGS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Id = BigInteger().with_variant(Integer(), "sqlite")

SITE_ID_MAX = 255
EVENT_TYPE_MAX = 255
PATH_MAX = 500
USER_ID_MAX = 255

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site_id", String(SITE_ID_MAX), nullable=False),
    Column("event_type", String(EVENT_TYPE_MAX), nullable=False),
    Column("path", String(PATH_MAX), nullable=True),
    Column("user_id", String(USER_ID_MAX), nullable=True),
    Column("timestamp", Timestamp, nullable=False),
    Index("ix_events_site_timestamp", "site_id", "timestamp"),
    **MYSQL_TABLE_ARGS,
)

# One row per committed batch, written in the batch's own transaction: a batch
# replayed after a crash finds its id here and is acknowledged without a second
# insert. Rows older than a day are pruned by the worker.
ingest_batches = Table(
    "ingest_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("events", Integer, nullable=False),
    Column("committed_at", Timestamp, nullable=False, index=True),
    **MYSQL_TABLE_ARGS,
)
