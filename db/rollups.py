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

Each worker process also remembers, per engine, user-set rows it knows are
committed (:class:`MemberCache`, ``ROLLUP_CACHE_SIZE`` rows, least recently used
buckets forgotten first) and leaves them out of step 1: a user set only grows, so
a row known to be in it would be ignored anyway and cannot be new. Rows are
remembered only after the batch's transaction commits (:func:`apply_batch`
returns the callback the writer runs then), never for a rolled-back batch.
``analytics rebuild-rollups`` keeps this true: it recomputes a day from the raw
events, which still hold every remembered user. Deleting rollup rows or raw events
by other means while a worker runs (a restore, a manual ``DELETE``, a retention
job followed by a rebuild) needs a worker restart, or :func:`forget` on its
engine. The worker sizes it from ``ROLLUP_CACHE_SIZE`` (:func:`configure_cache`).

Only portable SQL is used (no triggers, procedures or RETURNING), so the same
statements run on MySQL, MariaDB and TiDB.
"""

from __future__ import annotations

import hashlib
import secrets
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from db.event import Event
from db.models import (
    ALL_TYPES,
    ONE_TYPE,
    events,
    rollup_day_paths,
    rollup_day_users,
    rollup_days,
    rollup_hour_users,
    rollup_hours,
    rollup_sites,
)
from db.settings import DEFAULT_ROLLUP_CACHE_SIZE

# (site_id, scope, event_type, bucket): bucket is a date (days) or a datetime (hours).
DayKey = tuple[str, int, str, date]
HourKey = tuple[str, int, str, datetime]
# The same plus the hex digest of a user id or a path.
DayHashKey = tuple[str, int, str, date, str]
HourHashKey = tuple[str, int, str, datetime, str]

# Rows per statement when writing large aggregates (rebuild-rollups).
CHUNK_ROWS = 2000

# User-set rows a worker process remembers per engine (ROLLUP_CACHE_SIZE; about
# 150 bytes each). 0 turns the cache off.
DEFAULT_CACHE_SIZE = DEFAULT_ROLLUP_CACHE_SIZE


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


# ---------------------------------------------------------------- writing rows
#
# On MySQL/MariaDB/TiDB the rows of a statement are rendered as SQL literals here
# rather than handed to the driver's executemany, which escapes every parameter of
# every row one by one in Python (most of a batch's CPU time): the key prefix of a
# bucket (site, scope, type, day or hour) is rendered once per bucket, strings once
# each (with the driver connection's own ``escape``, which follows its charset and
# NO_BACKSLASH_ESCAPES), digests are hex and numbers and dates render themselves.
# The statement's text around ``VALUES`` comes from SQLAlchemy's compilation of
# the same Core statement, so the SQL is the one the executemany path would send.
# SQLite keeps the executemany path.

_frames: dict[tuple[str, str, str], tuple[str, str]] = {}


def _frame(conn: AsyncConnection, stmt: Insert, name: str, table: Table) -> tuple[str, str]:
    """``(head, tail)`` of ``stmt`` compiled: ``head + "(…),(…)" + tail`` is the statement."""
    key = (conn.dialect.name, name, table.name)
    frame = _frames.get(key)
    if frame is None:
        sql = str(stmt.compile(dialect=conn.dialect))
        marker = " VALUES ("
        at = sql.index(marker) + len(marker) - 1
        close = sql.index(")", at)
        placeholders = sql[at + 1 : close].split(",")
        if len(placeholders) != len(table.c):
            raise RuntimeError(f"unexpected compiled INSERT for {table.name}: {sql}")
        frame = _frames[key] = (sql[:at], sql[close + 1 :])
    return frame


class _Literals:
    """SQL literals for one statement batch, memoized (keys and strings repeat a lot)."""

    def __init__(self, escape: Callable[[Any], str]) -> None:
        self._escape = escape
        self._strings: dict[str, str] = {}
        self._keys: dict[tuple[Any, ...], str] = {}

    def string(self, value: str) -> str:
        out = self._strings.get(value)
        if out is None:
            out = self._strings[value] = self._escape(value)
        return out

    def key(self, key: tuple[Any, ...]) -> str:
        """``'site',scope,'type','bucket'`` for a (site, scope, type, day or hour) key."""
        out = self._keys.get(key)
        if out is None:
            site, scope, etype, when = key
            text = when.isoformat(" ") if isinstance(when, datetime) else when.isoformat()
            out = f"{self.string(site)},{int(scope)},{self.string(etype)},'{text}'"
            self._keys[key] = out
        return out


async def _literals(conn: AsyncConnection) -> _Literals | None:
    """Literal rendering for ``conn``, or None where the executemany path is used."""
    if conn.dialect.name == "sqlite":
        return None
    raw = await conn.get_raw_connection()
    escape = getattr(raw.driver_connection, "escape", None)
    return None if escape is None else _Literals(escape)


async def _write(
    conn: AsyncConnection,
    stmt: Insert,
    name: str,
    table: Table,
    rows: list[tuple[Any, ...]],
    render: Callable[[tuple[Any, ...]], str] | None,
) -> None:
    """Write ``rows`` (tuples in ``table``'s column order) with ``stmt``, in chunks."""
    if not rows:
        return
    if render is None:
        names = [c.name for c in table.c]
        await execute_chunked(conn, stmt, [dict(zip(names, row, strict=True)) for row in rows])
        return
    head, tail = _frame(conn, stmt, name, table)
    await _send(conn, head, [render(row) for row in rows], tail)


# Longest statement sent (characters of VALUES), as PyMySQL's executemany splits
# (``max_stmt_length``): far below any server's max_allowed_packet.
MAX_STATEMENT_CHARS = 1_000_000


async def _send(conn: AsyncConnection, head: str, values: list[str], tail: str = "") -> None:
    """``head + values joined by commas + tail``, split into statements of bounded size."""
    if not values:
        return
    start, size = 0, 0
    for i, value in enumerate(values):
        size += len(value) + 1
        if i > start and (size > MAX_STATEMENT_CHARS or i - start >= CHUNK_ROWS):
            await conn.exec_driver_sql(
                head + ",".join(values[start:i]) + tail, execution_options={"no_parameters": True}
            )
            start, size = i, len(value) + 1
    await conn.exec_driver_sql(
        head + ",".join(values[start:]) + tail, execution_options={"no_parameters": True}
    )


async def insert_events(conn: AsyncConnection, batch: Sequence[Event]) -> None:
    """The batch's rows into ``events``: one multi-row INSERT (rendered as above on MySQL)."""
    lit = await _literals(conn)
    if lit is None:
        await conn.execute(insert(events), [event.row() for event in batch])
        return
    ls = lit.string
    values = [
        f"({ls(e.site_id)},{ls(e.event_type)},"
        f"{'NULL' if e.path is None else ls(e.path)},"
        f"{'NULL' if e.user_id is None else ls(e.user_id)},"
        f"'{e.timestamp.replace(tzinfo=None).isoformat(' ', 'microseconds')}')"
        for e in batch
    ]
    head = _EVENTS_HEAD.get(conn.dialect.name)
    if head is None:
        prep = conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in EVENT_COLUMNS)
        head = f"INSERT INTO {prep.format_table(events)} ({cols}) VALUES "
        _EVENTS_HEAD[conn.dialect.name] = head
    await _send(conn, head, values)


_EVENTS_HEAD: dict[str, str] = {}
EVENT_COLUMNS = ("site_id", "event_type", "path", "user_id", "timestamp")


async def _insert_new_users(
    conn: AsyncConnection,
    lit: _Literals | None,
    table: Table,
    bucket: str,
    keys: set[tuple[Any, ...]],
    token: int,
) -> Counter[tuple[Any, ...]]:
    """Insert the user rows; return how many were new, per (site, scope, type, bucket)."""
    if not keys:
        return Counter()
    rows = [(*k, token) for k in sorted(keys)]
    render = None
    if lit is not None:
        lk = lit.key

        def render(r: tuple[Any, ...]) -> str:
            return f"({lk(r[:4])},'{r[4]}',{int(r[5])})"

    await _write(conn, insert_ignore(conn, table), "ignore", table, rows, render)
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
    lit: _Literals | None,
    table: Table,
    events: Mapping[tuple[Any, ...], int],
    users: Mapping[tuple[Any, ...], int],
) -> None:
    keys = sorted(set(events) | set(users))
    rows = [(*k, events.get(k, 0), users.get(k, 0)) for k in keys]
    render = None
    if lit is not None:
        lk = lit.key

        def render(r: tuple[Any, ...]) -> str:
            return f"({lk(r[:4])},{int(r[4])},{int(r[5])})"

    stmt = upsert_adding(conn, table, ("events", "users"))
    await _write(conn, stmt, "counts", table, rows, render)


async def _upsert_paths(conn: AsyncConnection, lit: _Literals | None, deltas: Deltas) -> None:
    names = deltas.path_names
    rows = [(*k, names[k[4]], views) for k, views in sorted(deltas.path_views.items())]
    render = None
    if lit is not None:
        lk, ls = lit.key, lit.string

        def render(r: tuple[Any, ...]) -> str:
            return f"({lk(r[:4])},'{r[4]}',{ls(r[5])},{int(r[6])})"

    stmt = upsert_adding(conn, rollup_day_paths, ("views",))
    await _write(conn, stmt, "views", rollup_day_paths, rows, render)


async def _upsert_sites(
    conn: AsyncConnection, lit: _Literals | None, sites: Mapping[str, int]
) -> None:
    rows = sorted(sites.items())
    render = None
    if lit is not None:
        ls = lit.string

        def render(r: tuple[Any, ...]) -> str:
            return f"({ls(r[0])},{int(r[1])})"

    stmt = upsert_adding(conn, rollup_sites, ("events",))
    await _write(conn, stmt, "events", rollup_sites, rows, render)


async def write_deltas(
    conn: AsyncConnection, deltas: Deltas, cache: MemberCache | None = None
) -> None:
    """Add ``deltas`` to the aggregates on ``conn`` (inside the caller's transaction)."""
    token = secrets.randbits(62) + 1
    day_users, hour_users = deltas.day_users, deltas.hour_users
    if cache is not None:
        day_users, hour_users = cache.unknown(day_users), cache.unknown(hour_users)
    lit = await _literals(conn)
    new_day_users = await _insert_new_users(conn, lit, rollup_day_users, "day", day_users, token)
    new_hour_users = await _insert_new_users(
        conn, lit, rollup_hour_users, "hour", hour_users, token
    )
    await _upsert_paths(conn, lit, deltas)
    await _upsert_counts(conn, lit, rollup_days, deltas.days, new_day_users)
    await _upsert_counts(conn, lit, rollup_hours, deltas.hours, new_hour_users)
    await _upsert_sites(conn, lit, deltas.sites)


async def apply_batch(conn: AsyncConnection, batch: Sequence[Event]) -> Callable[[], None]:
    """Write the batch's aggregate deltas on ``conn`` (inside the batch transaction).

    Returns the callback to run once the transaction has committed (it remembers the
    batch's user-set rows as committed); not running it is always safe.
    """
    if not batch:
        return _nothing
    deltas = aggregate(batch)
    cache = cache_of(conn.sync_engine)
    await write_deltas(conn, deltas, cache)
    return lambda: cache.remember(deltas)


def _nothing() -> None:
    return None


# ---------------------------------------------------------------- membership cache


class MemberCache:
    """User-set rows known to be committed, grouped by bucket, least recently used out.

    A bucket is ``(site, scope, type, day or hour)`` of one table; buckets of the day
    and hour tables never collide (a ``date`` is not equal to a ``datetime``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._buckets: OrderedDict[tuple[Any, ...], set[str]] = OrderedDict()

    def unknown(self, keys: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
        """The keys (bucket + user digest) not known to be committed."""
        if not self._buckets:
            return keys
        buckets = self._buckets
        out = set()
        for key in keys:
            members = buckets.get(key[:4])
            if members is None or key[4] not in members:
                out.add(key)
        return out

    def remember(self, deltas: Deltas) -> None:
        if self.capacity <= 0:
            return
        buckets = self._buckets
        touched: set[tuple[Any, ...]] = set()
        added = 0
        for keys in (deltas.day_users, deltas.hour_users):
            for key in keys:
                bucket = key[:4]
                members = buckets.get(bucket)
                if members is None:
                    members = buckets[bucket] = set()
                if key[4] not in members:
                    members.add(key[4])
                    added += 1
                touched.add(bucket)
        for bucket in touched:
            buckets.move_to_end(bucket)
        self.size += added
        while self.size > self.capacity and buckets:
            _, members = buckets.popitem(last=False)
            self.size -= len(members)

    def clear(self) -> None:
        self._buckets.clear()
        self.size = 0


_caches: weakref.WeakKeyDictionary[Engine, MemberCache] = weakref.WeakKeyDictionary()


def configure_cache(engine: AsyncEngine | Engine, size: int) -> None:
    """Size the engine's cache (``ROLLUP_CACHE_SIZE``; 0 turns it off). The worker calls
    this once at start; an engine never configured gets :data:`DEFAULT_CACHE_SIZE`."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    _caches[sync] = MemberCache(size)


def cache_of(engine: Engine) -> MemberCache:
    """The engine's cache (created at the default size on first use)."""
    cache = _caches.get(engine)
    if cache is None:
        cache = _caches[engine] = MemberCache(DEFAULT_CACHE_SIZE)
    return cache


def forget(engine: AsyncEngine | Engine) -> None:
    """Drop what this process remembers for ``engine`` (after deleting rollup rows)."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    cache = _caches.get(sync)
    if cache is not None:
        cache.clear()
