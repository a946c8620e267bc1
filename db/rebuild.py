"""``analytics rebuild-rollups``: recompute the aggregates from ``events``.

For after a bulk import into ``events``, a schema change of the rollups, or an
upgrade of a database that predates them. Work is done one site-day at a time,
each in its own transaction, so memory is bounded by one day's distinct users,
paths, visitors and values and the visits of the window read (never by the number
of events) and the worker keeps running.

Why it is safe while the worker writes (MySQL/MariaDB, REPEATABLE READ):

1. The day's events are read with a *locking* read (``LOCK IN SHARE MODE``) on the
   ``(site_id, timestamp)`` index. It waits for every batch that has inserted rows
   into that site-day but not committed yet (such a batch is the only kind that
   may be holding or about to take locks on that site-day's rollup rows), and its
   next-key locks keep any new batch from inserting into that site-day until the
   rebuild commits. The read spans the window of db/rebuild_visits.py (an hour
   before the day to the end of the next day), because a visit's figures belong to
   the day of its first event while its other events may fall in that window: a
   batch storing such an event is waited for, or kept out, in the same way.
2. Then, table by table in the order batches use them, the day's rollup rows are
   deleted and written anew from what was read.

So every event of the site-day (and of its visits, within the window) is counted
exactly once: either it was committed
before the locking read (and is in the recomputation), or its batch inserts it
after the rebuild committed (and adds its deltas on top). A deadlock with a batch
spanning several days is possible; either side is rolled back and re-run (the
worker re-runs its batch, this module retries the day).

On SQLite (one writer at a time) the transaction first takes the write lock by
deleting the day's counters, and reads the events after that.

Site totals (``rollup_sites``) are then set, per site, to the sum of its day
counters in one ``INSERT … SELECT`` (a locking read of those counters).

This relies on InnoDB's gap locks: on TiDB, which has none, run it with the
worker stopped or only for days that no longer receive events.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import Table, and_, delete, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.errors import describe
from db.models import (
    ALL_TYPES,
    VISIT_DIMENSIONS,
    events,
    rollup_day_paths,
    rollup_day_users,
    rollup_day_visits,
    rollup_days,
    rollup_hour_users,
    rollup_hours,
    rollup_sites,
)
from db.rebuild_visits import VisitFold, dims_of, visit_rows, window
from db.rollups import Deltas, execute_chunked, upsert_adding
from db.rollups.visits import VisitDeltas

log = logging.getLogger("db.rebuild")

STREAM_ROWS = 10_000
MAX_ATTEMPTS = 50


@dataclass
class RebuildReport:
    site_days: int = 0
    events: int = 0
    sites: list[str] = field(default_factory=list)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    low = datetime.combine(day, time.min)
    return low, low + timedelta(days=1)


async def _sites(conn: AsyncConnection, site: str | None) -> list[str]:
    if site is not None:
        return [site]
    seen = set((await conn.scalars(select(events.c.site_id).distinct())).all())
    seen.update((await conn.scalars(select(rollup_sites.c.site_id))).all())
    return sorted(seen)


async def _days(
    conn: AsyncConnection, site: str, start: date | None, end: date | None
) -> list[date]:
    """The days of ``site`` (within the range) that have events or rollup rows.

    Days with events are found by skip-scanning the ``(site_id, timestamp)`` index
    (one seek per active day), never by reading the site's events.
    """
    out: set[date] = set()
    cursor = datetime.combine(start, time.min) if start else None
    high = datetime.combine(end + timedelta(days=1), time.min) if end else None
    while True:
        cond = [events.c.site_id == site]
        if cursor is not None:
            cond.append(events.c.timestamp >= cursor)
        if high is not None:
            cond.append(events.c.timestamp < high)
        first = await conn.scalar(select(func.min(events.c.timestamp)).where(*cond))
        if first is None:
            break
        day = first.date()
        out.add(day)
        cursor = datetime.combine(day + timedelta(days=1), time.min)
    cond = [rollup_days.c.site_id == site, rollup_days.c.scope == ALL_TYPES]
    if start is not None:
        cond.append(rollup_days.c.day >= start)
    if end is not None:
        cond.append(rollup_days.c.day <= end)
    out.update((await conn.scalars(select(rollup_days.c.day).where(*cond))).all())
    return sorted(out)


def _rows_for(deltas: Deltas) -> list[tuple[Table, list[dict[str, Any]]]]:
    """The complete rollup rows of one site-day, per table, in the batches' table order."""
    day_users: Counter[tuple[Any, ...]] = Counter(k[:4] for k in deltas.day_users)
    hour_users: Counter[tuple[Any, ...]] = Counter(k[:4] for k in deltas.hour_users)

    def key(k: tuple[Any, ...], bucket: str) -> dict[str, Any]:
        return {"site_id": k[0], "scope": k[1], "event_type": k[2], bucket: k[3]}

    return [
        (
            rollup_day_users,
            [{**key(k, "day"), "user_hash": k[4], "token": 0} for k in sorted(deltas.day_users)],
        ),
        (
            rollup_hour_users,
            [{**key(k, "hour"), "user_hash": k[4], "token": 0} for k in sorted(deltas.hour_users)],
        ),
        (
            rollup_day_paths,
            [
                {
                    **key(k, "day"),
                    "path_hash": k[4],
                    "path": deltas.path_names[k[4]],
                    "views": n,
                }
                for k, n in sorted(deltas.path_views.items())
            ],
        ),
        (
            rollup_days,
            [
                {**key(k, "day"), "events": n, "users": day_users.get(k, 0)}
                for k, n in sorted(deltas.days.items())
            ],
        ),
        (
            rollup_hours,
            [
                {**key(k, "hour"), "events": n, "users": hour_users.get(k, 0)}
                for k, n in sorted(deltas.hours.items())
            ],
        ),
    ]


def _day_rows(table: Table, site: str, day: date) -> Any:
    if "day" in table.c:
        return and_(table.c.site_id == site, table.c.day == day)
    low, high = _day_bounds(day)
    return and_(table.c.site_id == site, table.c.hour >= low, table.c.hour < high)


def _events_query(site: str, day: date, sqlite: bool) -> Any:
    """The locking read of the events that rebuild ``day`` (db/rebuild_visits.window)."""
    low, high = window(day)
    query = select(
        events.c.event_type,
        events.c.path,
        events.c.user_id,
        events.c.timestamp,
        events.c.visitor_id,
        events.c.visit_id,
        events.c.visit_seq,
        events.c.props,
        *[events.c[name] for name in VISIT_DIMENSIONS],
    ).where(events.c.site_id == site, events.c.timestamp >= low, events.c.timestamp < high)
    return query if sqlite else query.with_for_update(read=True)


async def _fold_events(
    conn: AsyncConnection, site: str, day: date, deltas: Deltas, visits: VisitDeltas
) -> int:
    """Read the window's events into ``deltas`` and ``visits``; returns the day's count."""
    low, high = _day_bounds(day)
    fold = VisitFold()
    count = 0
    result = await conn.stream(_events_query(site, day, conn.dialect.name == "sqlite"))
    async for part in result.partitions(STREAM_ROWS):
        for row in part:
            event_type, path, user_id, timestamp, visitor, visit_id, seq, props = row[:8]
            if visit_id is not None:
                fold.add(visit_id, seq, visitor, timestamp, event_type, path, dims_of(row, 8))
            if not low <= timestamp < high:
                continue
            count += 1
            deltas.add(site, event_type, path, user_id, timestamp)
            visits.add_row(
                site, event_type, path, timestamp, visitor, orjson.loads(props) if props else None
            )
    fold.add_to(visits, site, day)
    visits.finish()
    return count


async def _rebuild_day_once(conn: AsyncConnection, site: str, day: date) -> int:
    if conn.dialect.name == "sqlite":
        # Take SQLite's write lock before reading, so no batch commits in between.
        await conn.execute(delete(rollup_days).where(_day_rows(rollup_days, site, day)))
    deltas, visits = Deltas(), VisitDeltas()
    count = await _fold_events(conn, site, day, deltas, visits)
    day_visits = _day_rows(rollup_day_visits, site, day)
    bots_read = select(rollup_day_visits.c.bots).where(day_visits)
    if conn.dialect.name != "sqlite":
        bots_read = bots_read.with_for_update()
    bots = int(await conn.scalar(bots_read) or 0)
    if bots:
        visits.add_bot(site, day)  # the row must stay, to keep its bots
    for table, rows in [*_rows_for(deltas), *visit_rows(visits, bots)]:
        await conn.execute(delete(table).where(_day_rows(table, site, day)))
        if rows:
            await execute_chunked(conn, insert(table), rows)
    return count


async def rebuild_day(engine: AsyncEngine, site: str, day: date) -> int:
    """Recompute one site-day's rollups in one transaction; returns its event count."""
    attempt = 0
    while True:
        try:
            async with engine.connect() as raw:
                conn = raw
                if engine.dialect.name != "sqlite":
                    conn = await raw.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    return await _rebuild_day_once(conn, site, day)
        except OperationalError as exc:  # deadlock, lock wait timeout, server gone
            attempt += 1
            if attempt >= MAX_ATTEMPTS:
                raise
            log.info("rebuilding %s %s: %s; retrying", site, day, describe(exc))
            await asyncio.sleep(min(0.02 * attempt, 0.5))


async def refresh_site_total(engine: AsyncEngine, site: str) -> None:
    """Set ``rollup_sites`` for ``site`` to the sum of its day counters, atomically."""
    total = select(func.coalesce(func.sum(rollup_days.c.events), 0)).where(
        rollup_days.c.site_id == site, rollup_days.c.scope == ALL_TYPES
    )
    attempt = 0
    while True:
        try:
            async with engine.begin() as conn:
                value: Any
                if conn.dialect.name == "sqlite":
                    value = total.scalar_subquery()  # one statement under the write lock
                else:
                    value = int(await conn.scalar(total.with_for_update(read=True)) or 0)
                stmt = upsert_adding(conn, rollup_sites, (), replace=("events",))
                await conn.execute(stmt.values(site_id=site, events=value))
            return
        except OperationalError:
            attempt += 1
            if attempt >= MAX_ATTEMPTS:
                raise
            await asyncio.sleep(min(0.02 * attempt, 0.5))


async def rebuild(
    engine: AsyncEngine,
    *,
    site: str | None = None,
    start: date | None = None,
    end: date | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_day: Callable[[str, date, int], None] | None = None,
) -> RebuildReport:
    """Rebuild the rollups of ``site`` (or all sites) for days ``start``..``end`` (or all).

    ``on_plan(n)`` is called once with the number of site-days to do, ``on_day``
    after each one (for a progress bar).
    """
    report = RebuildReport()
    async with engine.connect() as conn:
        sites = await _sites(conn, site)
        plan: list[tuple[str, Sequence[date]]] = [
            (s, await _days(conn, s, start, end)) for s in sites
        ]
    if on_plan is not None:
        on_plan(sum(len(days) for _, days in plan))
    for s, days in plan:
        for day in days:
            n = await rebuild_day(engine, s, day)
            report.site_days += 1
            report.events += n
            if on_day is not None:
                on_day(s, day, n)
        await refresh_site_total(engine, s)
        report.sites.append(s)
    return report
