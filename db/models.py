"""Table definitions (SQLAlchemy Core: bulk inserts of plain dicts, no ORM overhead).

``events`` is the original README's table: id, site_id, event_type, path, user_id,
timestamp with the same nullability. Two deliberate widenings: ``id`` is BIGINT on
MySQL (a 32-bit INT runs out after 2.1 billion events, which "millions a day"
reaches), and ``timestamp`` keeps microseconds. Tables are utf8mb4 on
MySQL/MariaDB/TiDB, or a single emoji in a path fails the whole batch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

from db.limits import (
    COUNTRY_LEN,
    EVENT_TYPE_MAX,
    LABEL_MAX,
    PATH_MAX,
    PROPERTY_MAX,
    SITE_ID_MAX,
    USER_ID_MAX,
    VALUE_MAX,
)

metadata = MetaData()

MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _table(name: str, *columns: Column[Any] | Index) -> Table:
    """An InnoDB utf8mb4 table of ``metadata``."""
    return Table(name, metadata, *columns, **MYSQL_TABLE_ARGS)


def _at(*names: str, nullable: bool = False) -> list[Column[Any]]:
    """Timestamp columns (naive UTC)."""
    return [Column(name, Timestamp, nullable=nullable) for name in names]


Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
DIGEST_LEN = 32
Digest = String(DIGEST_LEN).with_variant(
    mysql.CHAR(DIGEST_LEN, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)

# What a visit is reported by, taken from its first event and stored on each of its
# events (db/visit.py): acquisition, place and device. ``referrer`` is the referring
# page without its query string; the *_version columns hold major versions.
VISIT_DIMENSIONS: tuple[str, ...] = (
    "source",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
)


def _dimension(name: str) -> Column[Any]:
    if name == "referrer":
        return Column(name, String(PATH_MAX), nullable=True)
    if name == "country":
        return Column(name, String(COUNTRY_LEN), nullable=True)
    return Column(name, String(LABEL_MAX), nullable=True)


# 64-bit on MySQL (ids and counters outgrow 32 bits at millions of events a day);
# SQLite's INTEGER is 64-bit already and only it autoincrements a primary key.
BigInt = BigInteger().with_variant(Integer(), "sqlite")
Id = BigInt

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site_id", String(SITE_ID_MAX), nullable=False),
    Column("event_type", String(EVENT_TYPE_MAX), nullable=False),
    Column("path", String(PATH_MAX), nullable=True),
    Column("user_id", String(USER_ID_MAX), nullable=True),
    Column("timestamp", Timestamp, nullable=False),
    # The visitor (the user_id's digest, or the day's salted hash of address and
    # User-Agent), the visit (a random id) and the event's place in it: db/visit.py.
    Column("visitor_id", Digest, nullable=True),
    Column("visit_id", BigInt, nullable=True),
    Column("visit_seq", Integer, nullable=True),
    *[_dimension(name) for name in VISIT_DIMENSIONS],
    # Custom properties: a JSON object of text values.
    Column("props", Text, nullable=True),
    Index("ix_events_site_timestamp", "site_id", "timestamp"),
    **MYSQL_TABLE_ARGS,
)

# What a stored event holds besides its generated id (Event.row's keys, the
# columns of the worker's multi-row INSERT).
EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns if not c.primary_key)

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

# ---------------------------------------------------------------- rollups
#
# Aggregates the worker keeps in each batch's transaction (db/rollups/) and
# /stats reads (db/stats.py). Every table has a ``scope`` column: 0 = all event
# types together (``event_type`` is then ''), 1 = the one event type named. A
# flag rather than a sentinel type, because under MariaDB's PAD SPACE collation
# an event type made of spaces would equal any sentinel string.
#
# Paths (500 chars) and user ids (255) would push a utf8mb4 primary key past
# InnoDB's 3072-byte limit next to site_id and event_type, so keys hold their
# MD5 digest, as 32 lowercase hex characters in an ASCII column (what SQL's
# MD5() returns; hex rather than BINARY(16) because aiomysql 0.3.2 cannot send
# bytes parameters with PyMySQL >= 1.2). The path is stored beside its digest
# for display. User rows keep only the digest: distinct counts are exact short
# of an MD5 collision between two user ids of one site-day (~n²/2¹²⁹).

ALL_TYPES = 0
ONE_TYPE = 1

Count = BigInt
Hour = DateTime().with_variant(mysql.DATETIME(), "mysql", "mariadb")


def _scoped_key() -> list[Column[Any]]:
    return [
        Column("site_id", String(SITE_ID_MAX), primary_key=True),
        Column("scope", SmallInteger, primary_key=True, autoincrement=False),
        Column("event_type", String(EVENT_TYPE_MAX), primary_key=True),
    ]


def _bucketed(name: str, bucket: Column[Any], *columns: Column[Any] | Index) -> Table:
    """A table keyed by site, scope, type and a day or hour ``bucket``, then ``columns``."""
    return Table(name, metadata, *_scoped_key(), bucket, *columns, **MYSQL_TABLE_ARGS)


def _counters(name: str, bucket: Column[Any]) -> Table:
    """Per bucket: events, and distinct users (the number of rows of its user set)."""
    return _bucketed(
        name,
        bucket,
        Column("events", Count, nullable=False),
        Column("users", Count, nullable=False),
    )


def _user_set(name: str, bucket: Column[Any]) -> Table:
    """The exact set of distinct users of each bucket. ``token`` is the random id of
    the transaction that inserted the row (0 for rows written by rebuild-rollups): a
    batch counts as new exactly the rows carrying its token, found through the token
    index (see db/rollups)."""
    token = Column("token", Count, nullable=False)
    digest = Column("user_hash", Digest, primary_key=True)
    return _bucketed(name, bucket, digest, token, Index(f"ix_{name}_token", "token"))


# Per UTC day, and per UTC hour (``hour`` is the start of the hour, naive UTC).
rollup_days = _counters("rollup_days", Column("day", Date, primary_key=True))
rollup_hours = _counters("rollup_hours", Column("hour", Hour, primary_key=True))
rollup_day_users = _user_set("rollup_day_users", Column("day", Date, primary_key=True))
rollup_hour_users = _user_set("rollup_hour_users", Column("hour", Hour, primary_key=True))

# Views per path (events with a path; null paths are not listed).
rollup_day_paths = Table(
    "rollup_day_paths",
    metadata,
    *_scoped_key(),
    Column("day", Date, primary_key=True),
    Column("path_hash", Digest, primary_key=True),
    Column("path", String(PATH_MAX), nullable=False),
    Column("views", Count, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# Events per site, all time (for /sites).
rollup_sites = Table(
    "rollup_sites",
    metadata,
    Column("site_id", String(SITE_ID_MAX), primary_key=True),
    Column("events", Count, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# ---------------------------------------------------------------- visitors and visits
#
# A visit's figures are kept under the day (hour) of the visit's first event; event
# figures under the event's own day. Distinct visitors are counted as the user
# counters are: an exact set of visitor digests per bucket (``token`` as above) whose
# new rows add to a ``visitors`` counter.


def _site(bucket: str) -> list[Column[Any]]:
    """The key's first columns: the site, then its ``day`` or ``hour``."""
    kind = Date if bucket == "day" else Hour
    return [
        Column("site_id", String(SITE_ID_MAX), primary_key=True),
        Column(bucket, kind, primary_key=True),
    ]


def _visitor_set(name: str, *key: Column[Any]) -> Table:
    digest = Column("visitor_hash", Digest, primary_key=True)
    token = Column("token", Count, nullable=False)
    return _table(name, *key, digest, token, Index(f"ix_{name}_token", "token"))


def _figures(*names: str) -> list[Column[Any]]:
    return [Column(name, Count, nullable=False) for name in names]


# The figures of a rollup_day_visits row and of a rollup_day_values row, in column order
# (the writer's delta vectors follow the same order).
DAY_FIGURES = ("visitors", "visits", "bounces", "duration", "pageviews", "bots")
VALUE_FIGURES = ("visitors", "visits", "bounces", "duration", "pageviews", "events")

# Per site and day: distinct visitors (of events that day), visits that started that
# day with their bounces and summed duration (µs), pageviews, and bot events refused.
rollup_day_visits = _table(
    "rollup_day_visits",
    *_site("day"),
    *_figures(*DAY_FIGURES),
)
rollup_hour_visits = _table(
    "rollup_hour_visits",
    *_site("hour"),
    *_figures("visitors", "visits"),
)
rollup_day_visitors = _visitor_set("rollup_day_visitors", *_site("day"))
rollup_hour_visitors = _visitor_set("rollup_hour_visitors", *_site("hour"))

# Breakdowns: per site, day, property (``page``, ``source``, ``props:<key>``, ...) and
# value (keyed by its digest, stored beside it for display).
rollup_day_values = _table(
    "rollup_day_values",
    *_site("day"),
    Column("property", String(PROPERTY_MAX), primary_key=True),
    Column("value_hash", Digest, primary_key=True),
    Column("value", String(VALUE_MAX), nullable=False),
    *_figures(*VALUE_FIGURES),
)
rollup_day_value_visitors = _visitor_set(
    "rollup_day_value_visitors",
    *_site("day"),
    Column("property", String(PROPERTY_MAX), primary_key=True),
    Column("value_hash", Digest, primary_key=True),
)
# A visit's device and place values (from the address and User-Agent that define a
# cookieless visitor) rarely differ between a visitor's visits of a day, so each
# visitor-day keeps one profile: those values' digests ('' for none) from the first visit
# committed. Distinct visitors per value are the profiles' plus the set rows of values a
# visitor-day's profile lacks (db/rollups/visit_writer.py): one row, not one per value.
# ``token`` as above, but read by primary key, so not indexed.
PROFILE_DIMENSIONS = VISIT_DIMENSIONS[VISIT_DIMENSIONS.index("country") :]
PROFILE_COLUMNS = tuple(f"{name}_hash" for name in PROFILE_DIMENSIONS)
rollup_day_visit_profiles = _table(
    "rollup_day_visit_profiles",
    *_site("day"),
    Column("visitor_hash", Digest, primary_key=True),
    Column("token", Count, nullable=False),
    *[Column(name, Digest, nullable=False) for name in PROFILE_COLUMNS],
)

# The exit page is the one value a visit can leave: visitors per exit page count the
# visitors with at least one visit ending there (``visits`` > 0), kept exactly.
rollup_day_exit_visitors = _table(
    "rollup_day_exit_visitors",
    *_site("day"),
    Column("value_hash", Digest, primary_key=True),
    Column("visitor_hash", Digest, primary_key=True),
    *_figures("visits"),
)

# Every aggregate table, in the order defined above.
ROLLUP_TABLES = tuple(t for name, t in metadata.tables.items() if name.startswith("rollup_"))

# ---------------------------------------------------------------- accounts
#
# Who may read which site (webapp/auth). Secrets are never stored: session tokens,
# API keys, share tokens and one-time sign-in tokens are kept as their HMAC-SHA256
# under SECRET_KEY (64 hex characters); a short prefix of each key is kept for display.
# No foreign keys: rows of a removed user or site are deleted with it (db/accounts.py).
#
# Every right on a site (a viewer, a key's scope, a share link) names the site's
# registration (``sites.id``), never its bare name: ids are never reused, so a name
# registered again after a removal is a new registration that no earlier credential reads.

HASH_LEN = 64
EMAIL_MAX = 254
SecretHash = String(HASH_LEN).with_variant(
    mysql.CHAR(HASH_LEN, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)


users = _table(
    "users",
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(EMAIL_MAX), nullable=False, unique=True),
    # argon2id encoded hash; '' for an account that has no password yet (first-run link).
    Column("password_hash", String(255), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    *_at("created_at"),
)

# A registration: registering gives a site name an owner (events need no registration).
# AUTOINCREMENT on SQLite too, so that an id is never given out twice.
sites = Table(
    "sites",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site_id", String(SITE_ID_MAX), nullable=False, unique=True),
    Column("owner_id", Id, nullable=False, index=True),
    *_at("created_at"),
    sqlite_autoincrement=True,
    **MYSQL_TABLE_ARGS,
)

site_viewers = _table(
    "site_viewers",
    Column("site_ref", Id, primary_key=True),
    Column("user_id", Id, primary_key=True, index=True),
)

auth_sessions = _table(
    "auth_sessions",
    Column("token_hash", SecretHash, primary_key=True),
    Column("user_id", Id, nullable=False, index=True),
    *_at("created_at", "last_seen_at", "expires_at"),
    Index("ix_auth_sessions_expires_at", "expires_at"),
)

api_keys = _table(
    "api_keys",
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", SecretHash, nullable=False, unique=True),
    *_at("created_at"),
    *_at("last_used_at", "revoked_at", nullable=True),
    # True: the key reads what its user reads; False: only its api_key_sites rows (none
    # left, after the removal of its sites: nothing).
    Column("all_sites", Boolean, nullable=False),
)

# The registrations a key is limited to (when its all_sites is false).
api_key_sites = _table(
    "api_key_sites",
    Column("key_id", Id, primary_key=True),
    Column("site_ref", Id, primary_key=True, index=True),
)

share_links = _table(
    "share_links",
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("site_ref", Id, nullable=False, index=True),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", SecretHash, nullable=False, unique=True),
    *_at("created_at"),
    *_at("revoked_at", nullable=True),
)

# One-time sign-in links (the first-run link of `analytics serve`): deleted when used.
login_tokens = _table(
    "login_tokens",
    Column("token_hash", SecretHash, primary_key=True),
    Column("user_id", Id, nullable=False),
    *_at("expires_at"),
)
