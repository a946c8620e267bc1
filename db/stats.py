"""The stats behind /stats, /stats/event-types, /stats/timeseries and /sites.

The answers are read from the rollup tables the worker keeps in each batch's
transaction (:mod:`db.rollups`), never from ``events``: a day's figures are a few
primary-key range reads whatever the volume. Every function takes an
:class:`AsyncSession` and UTC dates (``start``..``end`` inclusive) and returns
plain data for the JSON answer.

Unique users over a range of days are exact: a single day (or a range in which
only one day has users) reads the day's counter; a longer range counts the
distinct user digests of the range's days (``COUNT(DISTINCT)`` over
``rollup_day_users``, one row per user and active day, so it costs in proportion
to user-days in the range, not events).

The same answers computed from ``events`` with plain SQL, the reference the
property tests and the benchmark compare against, are in ``tests/reference_sql.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    ALL_TYPES,
    ONE_TYPE,
    rollup_day_paths,
    rollup_day_users,
    rollup_day_visits,
    rollup_days,
    rollup_hour_visits,
    rollup_hours,
    rollup_sites,
)


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


def _scoped(
    table: Table, site_id: str, event_type: str | None, *more: ColumnElement[bool]
) -> ColumnElement[bool]:
    """Rows of ``site_id`` for one event type, or for all types together (``None``)."""
    scope, etype = (ALL_TYPES, "") if event_type is None else (ONE_TYPE, event_type)
    return and_(
        table.c.site_id == site_id, table.c.scope == scope, table.c.event_type == etype, *more
    )


def _in_days(table: Table, period: Period) -> ColumnElement[bool]:
    if period.days == 1:
        return table.c.day == period.start
    return table.c.day.between(period.start, period.end)


async def summary(
    session: AsyncSession, site_id: str, period: Period, event_type: str | None, limit: int
) -> dict[str, Any]:
    """total_views, unique_users and top_paths (most views first, ties by path, nulls out)."""
    day_rows = (
        await session.execute(
            select(rollup_days.c.day, rollup_days.c.events, rollup_days.c.users).where(
                _scoped(rollup_days, site_id, event_type, _in_days(rollup_days, period))
            )
        )
    ).all()
    total = sum(int(n) for _, n, _ in day_rows)
    with_users = [(d, int(u)) for d, _, u in day_rows if u]
    if len(with_users) <= 1:
        unique = sum(u for _, u in with_users)
    else:
        unique = int(
            await session.scalar(
                select(func.count(distinct(rollup_day_users.c.user_hash))).where(
                    _scoped(
                        rollup_day_users,
                        site_id,
                        event_type,
                        _in_days(rollup_day_users, period),
                    )
                )
            )
            or 0
        )
    active = [d for d, n, _ in day_rows if n]
    top: list[dict[str, Any]] = []
    if len(active) == 1:
        # One day with events (always the case for a single-day query): its rows
        # already hold the final figures, no grouping needed.
        t = rollup_day_paths
        rows = await session.execute(
            select(t.c.path, t.c.views)
            .where(_scoped(t, site_id, event_type, t.c.day == active[0]))
            .order_by(t.c.views.desc(), t.c.path.asc())
            .limit(limit)
        )
        top = [{"path": p, "views": int(v)} for p, v in rows.all()]
    elif active:
        t = rollup_day_paths
        path = func.max(t.c.path).label("path")
        views = func.sum(t.c.views).label("views")
        rows = await session.execute(
            select(path, views)
            .where(_scoped(t, site_id, event_type, _in_days(t, period)))
            .group_by(t.c.path_hash)
            .order_by(views.desc(), path.asc())
            .limit(limit)
        )
        top = [{"path": p, "views": int(v)} for p, v in rows.all()]
    return {"total_views": total, "unique_users": unique, "top_paths": top}


async def event_types(session: AsyncSession, site_id: str, period: Period) -> list[dict[str, Any]]:
    """Events per type over the period, most first, ties by type."""
    t = rollup_days
    count = func.sum(t.c.events).label("n")
    rows = await session.execute(
        select(t.c.event_type, count)
        .where(t.c.site_id == site_id, t.c.scope == ONE_TYPE, _in_days(t, period))
        .group_by(t.c.event_type)
        .having(count > 0)
        .order_by(count.desc(), t.c.event_type.asc())
    )
    return [{"event_type": e, "count": int(n)} for e, n in rows.all()]


def _fill(
    found: dict[datetime, tuple[int, int]],
    visits: dict[datetime, tuple[int, int]],
    period: Period,
    step: timedelta,
) -> list[dict[str, Any]]:
    cursor, high = period.bounds()
    out = []
    while cursor < high:
        views, users = found.get(cursor, (0, 0))
        visitors, visit_count = visits.get(cursor, (0, 0))
        out.append(
            {
                "t": cursor.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "views": views,
                "unique_users": users,
                "visitors": visitors,
                "visits": visit_count,
            }
        )
        cursor += step
    return out


async def timeseries(
    session: AsyncSession, site_id: str, period: Period, interval: str, event_type: str | None
) -> list[dict[str, Any]]:
    """Views, distinct users, distinct visitors and visits per hour or day bucket, every
    bucket present (zeros included).

    Views and users are exact with an ``event_type`` filter too (hour and day rollups
    are kept per type); visitors and visits are the site's, whatever the filter (a
    visit is not of one event type).
    """
    found: dict[datetime, tuple[int, int]] = {}
    visits: dict[datetime, tuple[int, int]] = {}
    if interval == "hour":
        low, high = period.bounds()
        h = rollup_hours
        rows = await session.execute(
            select(h.c.hour, h.c.events, h.c.users).where(
                _scoped(h, site_id, event_type, h.c.hour >= low, h.c.hour < high)
            )
        )
        for when, views, users in rows.all():
            found[when] = (int(views), int(users))
        hv = rollup_hour_visits
        rows = await session.execute(
            select(hv.c.hour, hv.c.visitors, hv.c.visits).where(
                hv.c.site_id == site_id, hv.c.hour >= low, hv.c.hour < high
            )
        )
        for when, visitors, count in rows.all():
            visits[when] = (int(visitors), int(count))
        return _fill(found, visits, period, timedelta(hours=1))
    d = rollup_days
    rows = await session.execute(
        select(d.c.day, d.c.events, d.c.users).where(
            _scoped(d, site_id, event_type, _in_days(d, period))
        )
    )
    for day, views, users in rows.all():
        found[datetime.combine(day, time.min)] = (int(views), int(users))
    dv = rollup_day_visits
    rows = await session.execute(
        select(dv.c.day, dv.c.visitors, dv.c.visits).where(
            dv.c.site_id == site_id, _in_days(dv, period)
        )
    )
    for day, visitors, count in rows.all():
        visits[datetime.combine(day, time.min)] = (int(visitors), int(count))
    return _fill(found, visits, period, timedelta(days=1))


async def sites(session: AsyncSession) -> list[dict[str, Any]]:
    """Every site seen, with its all-time event total, most events first."""
    s = rollup_sites
    rows = await session.execute(
        select(s.c.site_id, s.c.events)
        .where(s.c.events > 0)
        .order_by(s.c.events.desc(), s.c.site_id)
    )
    return [{"site_id": site, "total_events": int(n)} for site, n in rows.all()]
