"""The stats queries behind /stats, /stats/event-types, /stats/timeseries and /sites.

Every function takes an :class:`AsyncSession` and UTC dates (``start``..``end``
inclusive) and returns plain data for the JSON answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import events


@dataclass(frozen=True)
class Period:
    """UTC days ``start``..``end`` inclusive."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[datetime, datetime]:
        return (
            datetime.combine(self.start, time.min),
            datetime.combine(self.end + timedelta(days=1), time.min),
        )


def _where(site_id: str, period: Period, event_type: str | None) -> ColumnElement[bool]:
    low, high = period.bounds()
    conds = [events.c.site_id == site_id, events.c.timestamp >= low, events.c.timestamp < high]
    if event_type is not None:
        conds.append(events.c.event_type == event_type)
    return and_(*conds)


async def summary(
    session: AsyncSession, site_id: str, period: Period, event_type: str | None, limit: int
) -> dict[str, Any]:
    """total_views, unique_users and top_paths (most views first, ties by path, nulls out)."""
    where = _where(site_id, period, event_type)
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


async def event_types(session: AsyncSession, site_id: str, period: Period) -> list[dict[str, Any]]:
    count = func.count().label("n")
    rows = await session.execute(
        select(events.c.event_type, count)
        .where(_where(site_id, period, None))
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


async def timeseries(
    session: AsyncSession, site_id: str, period: Period, interval: str, event_type: str | None
) -> list[dict[str, Any]]:
    """Views and distinct users per bucket, every bucket present (zeros included)."""
    bucket = _bucket(session.bind.dialect.name, interval).label("bucket")
    stmt: Select[Any] = (
        select(bucket, func.count(), func.count(distinct(events.c.user_id)))
        .where(_where(site_id, period, event_type))
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


async def sites(session: AsyncSession) -> list[dict[str, Any]]:
    total = func.count().label("n")
    rows = await session.execute(
        select(events.c.site_id, total)
        .group_by(events.c.site_id)
        .order_by(total.desc(), events.c.site_id)
    )
    return [{"site_id": s, "total_events": int(n)} for s, n in rows.all()]
