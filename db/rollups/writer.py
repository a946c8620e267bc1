"""Writing a batch: its rows into ``events`` and its deltas into the aggregates.

Called by the worker's batch writer inside the transaction that also inserts the
batch's ledger row (see the package docstring for why each step is exact under
concurrency). Rows of every statement are sorted by primary key, so concurrent
transactions lock the rows of a table in the same order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models
from db.event import Event
from db.rollups.deltas import Deltas, aggregate
from db.rollups.dialect import upsert_adding
from db.rollups.literals import Literals, event_values, events_head, literals_for, send_values
from db.rollups.membership import Groups, MemberCache, cache_of, grouped
from db.rollups.rows import insert_new_members, write_rows
from db.rollups.visit_writer import write_visit_deltas
from db.rollups.visits import VisitDeltas, aggregate_visits


async def insert_events(conn: AsyncConnection, batch: Sequence[Event]) -> None:
    """The batch's rows into ``events``: one multi-row INSERT (literals on MySQL).
    Bots' events are counted (db/rollups), never stored."""
    batch = [event for event in batch if not event.bot]
    if not batch:
        return
    lit = await literals_for(conn)
    if lit is None:
        await conn.execute(insert(models.events), [event.row() for event in batch])
        return
    await send_values(conn, events_head(conn), event_values(lit, batch))


async def _upsert_counts(
    conn: AsyncConnection,
    lit: Literals | None,
    table: Table,
    counts: Mapping[tuple[Any, ...], int],
    users: Mapping[tuple[Any, ...], int],
) -> None:
    keys = sorted(set(counts) | set(users))
    rows = [(*k, counts.get(k, 0), users.get(k, 0)) for k in keys]
    render = lit.count_row if lit is not None else None
    stmt = upsert_adding(conn, table, ("events", "users"))
    await write_rows(conn, stmt, "counts", table, rows, render)


async def _upsert_paths(conn: AsyncConnection, lit: Literals | None, deltas: Deltas) -> None:
    names = deltas.path_names
    rows = [(*k, names[k[4]], views) for k, views in sorted(deltas.path_views.items())]
    render = lit.path_row if lit is not None else None
    stmt = upsert_adding(conn, models.rollup_day_paths, ("views",))
    await write_rows(conn, stmt, "views", models.rollup_day_paths, rows, render)


async def _upsert_sites(
    conn: AsyncConnection, lit: Literals | None, sites: Mapping[str, int]
) -> None:
    rows = sorted(sites.items())
    render = lit.site_row if lit is not None else None
    stmt = upsert_adding(conn, models.rollup_sites, ("events",))
    await write_rows(conn, stmt, "events", models.rollup_sites, rows, render)


async def write_deltas(
    conn: AsyncConnection,
    deltas: Deltas,
    cache: MemberCache | None = None,
    visits: VisitDeltas | None = None,
) -> list[Groups]:
    """Add ``deltas`` (and ``visits``, after them) to the aggregates on ``conn``
    (inside the caller's transaction); return the set rows written (grouped by bucket:
    db/rollups/membership), which the cache may remember once the transaction commits."""
    token = secrets.randbits(62) + 1
    users = [grouped(deltas.day_users), grouped(deltas.hour_users)]
    day_users, hour_users = users if cache is None else [cache.unknown(g) for g in users]
    lit = await literals_for(conn)
    new_day_users = await insert_new_members(
        conn, models.rollup_day_users, day_users, token, lit, "snsw"
    )
    new_hour_users = await insert_new_members(
        conn, models.rollup_hour_users, hour_users, token, lit, "snsw"
    )
    await _upsert_paths(conn, lit, deltas)
    await _upsert_counts(conn, lit, models.rollup_days, deltas.days, new_day_users)
    await _upsert_counts(conn, lit, models.rollup_hours, deltas.hours, new_hour_users)
    await _upsert_sites(conn, lit, deltas.sites)
    if visits is not None:
        users += await write_visit_deltas(conn, lit, visits, token, cache)
    return users


async def apply_batch(conn: AsyncConnection, batch: Sequence[Event]) -> Callable[[], None]:
    """Write the batch's aggregate deltas on ``conn`` (inside the batch transaction).

    Returns the callback to run once the transaction has committed (it remembers the
    batch's user-set and visitor-set rows as committed); not running it is always safe.
    """
    if not batch:
        return _nothing
    deltas = aggregate(batch)
    visits = aggregate_visits(batch)
    cache = cache_of(conn.sync_engine)
    written = await write_deltas(conn, deltas, cache, visits)
    return lambda: cache.remember(*written)


def _nothing() -> None:
    return None
