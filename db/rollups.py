"""Aggregates the worker keeps in each batch's transaction, so /stats never scans ``events``.

For every batch the writer calls :func:`apply_batch` on the batch's own connection,
inside the transaction that inserts the batch's rows and its ledger row. The
aggregates therefore commit atomically with the rows they summarize, and a
replayed batch (stopped by the ledger's primary key before reaching here) changes
neither.

The batch is aggregated in memory first (:class:`Deltas`), then written with one
statement per table, rows sorted by primary key so that concurrent transactions
lock rows of a table in the same order:

1. ``INSERT IGNORE`` (SQLite: ``ON CONFLICT DO NOTHING``) of the (site, scope, day
   or hour, user digest) rows into the distinct-user sets, each row carrying this
   transaction's random ``token``;
2. one ``SELECT … WHERE token = ours GROUP BY bucket`` (through the token index):
   the rows that carry our token are exactly the rows *this* transaction
   inserted, i.e. the users new to each bucket;
3. one upsert (``INSERT … ON DUPLICATE KEY UPDATE`` / ``ON CONFLICT DO UPDATE``)
   each into the path views, the day counters, the hour counters (adding the
   events and the new users) and the per-site totals.

Why step 2 is exact under concurrency: an insert of a key that another
transaction inserted but has not committed waits for it (InnoDB's duplicate
check takes a lock on the key); if that transaction commits our row is ignored,
if it rolls back ours is inserted. Either way exactly one transaction ever
inserts a given key, and our own inserts are always visible to our own reads
(even a consistent-snapshot read), while rows inserted by others never carry
our token. So each distinct user increments a bucket's ``users`` counter once.
Deadlocks (1213) and lock-wait timeouts (1205) are OperationalErrors: the writer's
caller re-runs the whole batch transaction with the same batch id (and a new token).

Only portable SQL is used (no triggers, procedures or RETURNING), so the same
statements run on MySQL, MariaDB and TiDB.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from asyncworker.protocol import Event
from db.models import (
    ALL_TYPES,
    ONE_TYPE,
    rollup_day_paths,
    rollup_day_users,
    rollup_days,
    rollup_hour_users,
    rollup_hours,
    rollup_sites,
)

# (site_id, scope, event_type, bucket): bucket is a date (days) or a datetime (hours).
DayKey = tuple[str, int, str, date]
HourKey = tuple[str, int, str, datetime]
# The same plus the hex digest of a user id or a path.
DayHashKey = tuple[str, int, str, date, str]
HourHashKey = tuple[str, int, str, datetime, str]

# Rows per statement when writing large aggregates (rebuild-rollups).
CHUNK_ROWS = 2000


def digest(value: str) -> str:
    """The key of a path or user id: MD5 of its UTF-8 bytes in hex, as SQL's ``MD5()``."""
    return hashlib.md5(value.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def scopes(event_type: str) -> tuple[tuple[int, str], tuple[int, str]]:
    return ((ALL_TYPES, ""), (ONE_TYPE, event_type))


@dataclass
class Deltas:
    """What a set of events adds to the aggregates, computed in memory."""

    days: Counter[DayKey] = field(default_factory=Counter)
    hours: Counter[HourKey] = field(default_factory=Counter)
    day_users: set[DayHashKey] = field(default_factory=set)
    hour_users: set[HourHashKey] = field(default_factory=set)
    path_views: Counter[DayHashKey] = field(default_factory=Counter)
    path_names: dict[str, str] = field(default_factory=dict)
    sites: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        site_id: str,
        event_type: str,
        path: str | None,
        user_id: str | None,
        timestamp: datetime,
    ) -> None:
        """Count one event; ``timestamp`` is UTC (naive, or aware and converted by the caller)."""
        day = timestamp.date()
        hour = timestamp.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        user = digest(user_id) if user_id is not None else None
        path_key = None
        if path is not None:
            path_key = digest(path)
            self.path_names[path_key] = path
        for scope, etype in scopes(event_type):
            self.days[(site_id, scope, etype, day)] += 1
            self.hours[(site_id, scope, etype, hour)] += 1
            if user is not None:
                self.day_users.add((site_id, scope, etype, day, user))
                self.hour_users.add((site_id, scope, etype, hour, user))
            if path_key is not None:
                self.path_views[(site_id, scope, etype, day, path_key)] += 1
        self.sites[site_id] += 1

    def add_event(self, event: Event) -> None:
        self.add(event.site_id, event.event_type, event.path, event.user_id, event.timestamp)


def aggregate(batch: Iterable[Event]) -> Deltas:
    deltas = Deltas()
    for event in batch:
        deltas.add_event(event)
    return deltas


# ---------------------------------------------------------------- statements


def _insert(conn: AsyncConnection, table: Table) -> Any:
    if conn.dialect.name == "sqlite":
        return sqlite_insert(table)
    return mysql_insert(table)


def insert_ignore(conn: AsyncConnection, table: Table) -> Insert:
    """INSERT that skips rows whose primary key exists (``INSERT IGNORE`` / ``DO NOTHING``)."""
    stmt = _insert(conn, table)
    if conn.dialect.name == "sqlite":
        return stmt.on_conflict_do_nothing()  # type: ignore[no-any-return]
    return stmt.prefix_with("IGNORE")  # type: ignore[no-any-return]


def upsert_adding(
    conn: AsyncConnection, table: Table, add: Sequence[str], replace: Sequence[str] = ()
) -> Insert:
    """INSERT that, on an existing key, adds the ``add`` columns and overwrites ``replace``."""
    stmt = _insert(conn, table)
    if conn.dialect.name == "sqlite":
        changes = {c: table.c[c] + stmt.excluded[c] for c in add}
        changes.update({c: stmt.excluded[c] for c in replace})
        return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=list(table.primary_key.columns), set_=changes
        )
    changes = {c: table.c[c] + stmt.inserted[c] for c in add}
    changes.update({c: stmt.inserted[c] for c in replace})
    return stmt.on_duplicate_key_update(changes)  # type: ignore[no-any-return]


async def execute_chunked(
    conn: AsyncConnection, stmt: Any, rows: Sequence[Mapping[str, Any]], chunk: int = CHUNK_ROWS
) -> None:
    """Executemany ``stmt`` (the driver sends multi-row statements) in bounded chunks."""
    for start in range(0, len(rows), chunk):
        await conn.execute(stmt, list(rows[start : start + chunk]))


async def _insert_new_users(
    conn: AsyncConnection,
    table: Table,
    bucket: str,
    keys: set[tuple[Any, ...]],
    token: int,
) -> Counter[tuple[Any, ...]]:
    """Insert the user rows; return how many were new, per (site, scope, type, bucket)."""
    if not keys:
        return Counter()
    ordered = sorted(keys)
    rows = [
        {
            "site_id": k[0],
            "scope": k[1],
            "event_type": k[2],
            bucket: k[3],
            "user_hash": k[4],
            "token": token,
        }
        for k in ordered
    ]
    await execute_chunked(conn, insert_ignore(conn, table), rows)
    cols = (table.c.site_id, table.c.scope, table.c.event_type, table.c[bucket])
    found = await conn.execute(
        select(*cols, func.count()).where(table.c.token == token).group_by(*cols)
    )
    new: Counter[tuple[Any, ...]] = Counter()
    for site_id, scope, etype, when, n in found:
        new[(site_id, scope, etype, when)] += int(n)
    return new


async def _upsert_counts(
    conn: AsyncConnection,
    table: Table,
    bucket: str,
    events: Mapping[tuple[Any, ...], int],
    users: Mapping[tuple[Any, ...], int],
) -> None:
    keys = sorted(set(events) | set(users))
    if not keys:
        return
    rows = [
        {
            "site_id": k[0],
            "scope": k[1],
            "event_type": k[2],
            bucket: k[3],
            "events": events.get(k, 0),
            "users": users.get(k, 0),
        }
        for k in keys
    ]
    await execute_chunked(conn, upsert_adding(conn, table, ("events", "users")), rows)


async def _upsert_paths(conn: AsyncConnection, deltas: Deltas) -> None:
    if not deltas.path_views:
        return
    rows = [
        {
            "site_id": k[0],
            "scope": k[1],
            "event_type": k[2],
            "day": k[3],
            "path_hash": k[4],
            "path": deltas.path_names[k[4]],
            "views": views,
        }
        for k, views in sorted(deltas.path_views.items())
    ]
    await execute_chunked(conn, upsert_adding(conn, rollup_day_paths, ("views",)), rows)


async def _upsert_sites(conn: AsyncConnection, sites: Mapping[str, int]) -> None:
    if not sites:
        return
    rows = [{"site_id": s, "events": n} for s, n in sorted(sites.items())]
    await conn.execute(upsert_adding(conn, rollup_sites, ("events",)), rows)


async def write_deltas(conn: AsyncConnection, deltas: Deltas) -> None:
    """Add ``deltas`` to the aggregates on ``conn`` (inside the caller's transaction)."""
    token = secrets.randbits(62) + 1
    new_day_users = await _insert_new_users(conn, rollup_day_users, "day", deltas.day_users, token)
    new_hour_users = await _insert_new_users(
        conn, rollup_hour_users, "hour", deltas.hour_users, token
    )
    await _upsert_paths(conn, deltas)
    await _upsert_counts(conn, rollup_days, "day", deltas.days, new_day_users)
    await _upsert_counts(conn, rollup_hours, "hour", deltas.hours, new_hour_users)
    await _upsert_sites(conn, deltas.sites)


async def apply_batch(conn: AsyncConnection, batch: Sequence[Event]) -> None:
    """Write the batch's aggregate deltas on ``conn`` (inside the batch transaction)."""
    if batch:
        await write_deltas(conn, aggregate(batch))
