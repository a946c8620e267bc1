"""The stats computed from ``events`` with plain SQL: the reference for the aggregates.

COUNT, COUNT DISTINCT and GROUP BY over the raw table, with the same arguments and
answer shapes as :mod:`db.stats`. The property tests and the benchmark compare
every figure the API serves (read from the rollups) with these; no endpoint uses them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import events
from db.stats import Period


def _raw_where(site_id: str, period: Period, event_type: str | None) -> ColumnElement[bool]:
    low, high = period.bounds()
    conds = [events.c.site_id == site_id, events.c.timestamp >= low, events.c.timestamp < high]
    if event_type is not None:
        conds.append(events.c.event_type == event_type)
    return and_(*conds)


async def raw_summary(
    session: AsyncSession, site_id: str, period: Period, event_type: str | None, limit: int
) -> dict[str, Any]:
    """total_views, unique_users and top_paths (most views first, ties by path, nulls out)."""
    where = _raw_where(site_id, period, event_type)
    row = (
        await session.execute(
            select(func.count(), func.count(distinct(events.c.user_id))).where(where)
        )
    ).one()
    views = func.count().label("views")
    paths = await session.execute(
        select(events.c.path, views)
        .where(where, events.c.path.is_not(None))
        .group_by(events.c.path)
        .order_by(views.desc(), events.c.path.asc())
        .limit(limit)
    )
    return {
        "total_views": int(row[0]),
        "unique_users": int(row[1]),
        "top_paths": [{"path": p, "views": int(v)} for p, v in paths.all()],
    }


async def raw_event_types(
    session: AsyncSession, site_id: str, period: Period
) -> list[dict[str, Any]]:
    count = func.count().label("n")
    rows = await session.execute(
        select(events.c.event_type, count)
        .where(_raw_where(site_id, period, None))
        .group_by(events.c.event_type)
        .order_by(count.desc(), events.c.event_type.asc())
    )
    return [{"event_type": t, "count": int(n)} for t, n in rows.all()]


def _bucket(dialect: str, interval: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        fmt = "%Y-%m-%d %H:00:00" if interval == "hour" else "%Y-%m-%d 00:00:00"
        return func.strftime(fmt, events.c.timestamp)
    fmt = "%Y-%m-%d %H:00:00" if interval == "hour" else "%Y-%m-%d 00:00:00"
    return func.date_format(events.c.timestamp, fmt)


async def raw_timeseries(
    session: AsyncSession, site_id: str, period: Period, interval: str, event_type: str | None
) -> list[dict[str, Any]]:
    """Views and distinct users per bucket, every bucket present (zeros included)."""
    bucket = _bucket(session.get_bind().dialect.name, interval).label("bucket")
    stmt: Select[Any] = (
        select(bucket, func.count(), func.count(distinct(events.c.user_id)))
        .where(_raw_where(site_id, period, event_type))
        .group_by(bucket)
    )
    found = {str(b): (int(v), int(u)) for b, v, u in (await session.execute(stmt)).all()}
    step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
    cursor, high = period.bounds()
    out = []
    while cursor < high:
        views, users = found.get(cursor.strftime("%Y-%m-%d %H:%M:%S"), (0, 0))
        out.append(
            {"t": cursor.strftime("%Y-%m-%dT%H:%M:%SZ"), "views": views, "unique_users": users}
        )
        cursor += step
    return out


async def raw_sites(session: AsyncSession) -> list[dict[str, Any]]:
    total = func.count().label("n")
    rows = await session.execute(
        select(events.c.site_id, total)
        .group_by(events.c.site_id)
        .order_by(total.desc(), events.c.site_id)
    )
    return [{"site_id": s, "total_events": int(n)} for s, n in rows.all()]
