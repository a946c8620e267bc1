"""The stats computed from ``events`` with plain SQL: the reference for the aggregates.

COUNT, COUNT DISTINCT and GROUP BY over the raw table, with the same arguments and
answer shapes as :mod:`db.stats`. The property tests and the benchmark compare
every figure the API serves (read from the rollups) with these; no endpoint uses them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, distinct, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import VISIT_DIMENSIONS, events
from db.stats import Period
from db.visit_stats import extras, summary_figures


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
    """Views, distinct users, visitors and visits per bucket, every bucket present."""
    bucket = _bucket(session.get_bind().dialect.name, interval).label("bucket")
    stmt: Select[Any] = (
        select(bucket, func.count(), func.count(distinct(events.c.user_id)))
        .where(_raw_where(site_id, period, event_type))
        .group_by(bucket)
    )
    found = {str(b): (int(v), int(u)) for b, v, u in (await session.execute(stmt)).all()}
    visits = await raw_visit_series(session, site_id, period, interval)
    step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
    cursor, high = period.bounds()
    out = []
    while cursor < high:
        key = cursor.strftime("%Y-%m-%d %H:%M:%S")
        views, users = found.get(key, (0, 0))
        visitors, visit_count = visits.get(key, (0, 0))
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


async def raw_sites(session: AsyncSession) -> list[dict[str, Any]]:
    total = func.count().label("n")
    rows = await session.execute(
        select(events.c.site_id, total)
        .group_by(events.c.site_id)
        .order_by(total.desc(), events.c.site_id)
    )
    return [{"site_id": s, "total_events": int(n)} for s, n in rows.all()]


# ---------------------------------------------------------------- visitors and visits
#
# The contract's figures, from the stored columns only: a visit is the events sharing a
# visit_id; its day and hour are those of its visit_seq 1 event; its duration is
# MAX - MIN of its timestamps; it bounced if it has one event; its entry (exit) page is
# the path of its pageview with the lowest (highest) visit_seq, found in the same GROUP
# BY by taking MIN (MAX) of the pageviews' zero-padded seq followed by the path.

_PAGEVIEW = "event_type = 'pageview' AND path IS NOT NULL"


def _sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _visits_sql(sqlite: bool) -> str:
    """One row per visit of ``:site``: visitor, events, duration µs, start, entry and exit
    (seq-prefixed keys), and each dimension as breakdowns list it."""
    if sqlite:
        padded = "printf('%010d', visit_seq) || path"
        us = (
            "(CAST(strftime('%s', {t}) AS INTEGER) * 1000000 + CAST(substr({t}, 21, 6) AS INTEGER))"
        )
        duration = f"{us.format(t='MAX(timestamp)')} - {us.format(t='MIN(timestamp)')}"
        version = "{f} || ' ' || {f}_version"
    else:
        padded = "CONCAT(LPAD(visit_seq, 10, '0'), path)"
        duration = "TIMESTAMPDIFF(MICROSECOND, MIN(timestamp), MAX(timestamp))"
        version = "CONCAT({f}, ' ', {f}_version)"
    dims = []
    for name in VISIT_DIMENSIONS:
        expr = (
            version.format(f=name.removesuffix("_version")) if name.endswith("_version") else name
        )
        dims.append(f"MAX(CASE WHEN visit_seq = 1 THEN {expr} END) AS {name}")
    return (
        "SELECT visit_id, MAX(visitor_id) AS visitor, COUNT(*) AS n,"
        f" {duration} AS duration,"
        " MAX(CASE WHEN visit_seq = 1 THEN timestamp END) AS start,"
        f" MIN(CASE WHEN {_PAGEVIEW} THEN {padded} END) AS entry_key,"
        f" MAX(CASE WHEN {_PAGEVIEW} THEN {padded} END) AS exit_key, "
        + ", ".join(dims)
        + " FROM events WHERE site_id = :site AND visit_id IS NOT NULL GROUP BY visit_id"
    )


def _visits_in(sqlite: bool) -> str:
    return f"(SELECT * FROM ({_visits_sql(sqlite)}) AS w WHERE start >= :low AND start < :high)"


async def _rows(session: AsyncSession, sql: str, site_id: str, period: Period) -> list[Any]:
    low, high = period.bounds()
    result = await session.execute(text(sql), {"site": site_id, "low": low, "high": high})
    return list(result.all())


async def raw_aggregate(
    session: AsyncSession, site_id: str, period: Period, bots: int
) -> dict[str, Any]:
    """The aggregate figures (``bots`` is given: bots' events are never stored)."""
    where = "site_id = :site AND timestamp >= :low AND timestamp < :high"
    ((visitors, pageviews),) = await _rows(
        session,
        "SELECT COUNT(DISTINCT visitor_id),"
        f" COALESCE(SUM(CASE WHEN {_PAGEVIEW} THEN 1 ELSE 0 END), 0) FROM events WHERE {where}",
        site_id,
        period,
    )
    ((visits, bounces, duration),) = await _rows(
        session,
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN n = 1 THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(duration), 0) FROM {_visits_in(_sqlite(session))} AS v",
        site_id,
        period,
    )
    return summary_figures(
        int(visitors), int(visits), int(bounces), int(duration), int(pageviews), bots
    )


def _breakdown_sql(sqlite: bool, prop: str) -> str:
    where = "site_id = :site AND timestamp >= :low AND timestamp < :high AND visitor_id IS NOT NULL"
    figures = "COUNT(DISTINCT visitor) AS visitors, 0, 0, 0, 0, COUNT(*)"
    if prop in ("page", "event_type") or prop.startswith("props:"):
        if prop == "page":
            value, where = "path", f"{where} AND {_PAGEVIEW}"
        elif prop == "event_type":
            value = "event_type"
        else:
            key = prop.removeprefix("props:").replace("\\", "\\\\").replace('"', '\\"')
            path = f"'$.\"{key}\"'"
            value = (
                f"json_extract(props, {path})"
                if sqlite
                else f"CAST(JSON_UNQUOTE(JSON_EXTRACT(props, {path}))"
                " AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin"
            )
        source = f"(SELECT {value} AS value, visitor_id AS visitor FROM events WHERE {where}) AS e"
        if prop == "page":
            figures = "COUNT(DISTINCT visitor) AS visitors, 0, 0, 0, COUNT(*), COUNT(*)"
        return f"SELECT value, {figures} FROM {source} WHERE value IS NOT NULL GROUP BY value"
    if prop in ("entry_page", "exit_page"):
        value = "SUBSTR(entry_key, 11)" if prop == "entry_page" else "SUBSTR(exit_key, 11)"
    else:
        value = prop
    return (
        f"SELECT {value} AS value, COUNT(DISTINCT visitor), COUNT(*),"
        " SUM(CASE WHEN n = 1 THEN 1 ELSE 0 END), SUM(duration), 0, 0"
        f" FROM {_visits_in(sqlite)} AS v WHERE {value} IS NOT NULL GROUP BY {value}"
    )


async def raw_breakdown(
    session: AsyncSession, site_id: str, period: Period, prop: str, limit: int
) -> list[dict[str, Any]]:
    """A breakdown: values with their distinct visitors and extras, most visitors first,
    ties by value (sorted here by code point, as the binary collations of the reads)."""
    rows = await _rows(session, _breakdown_sql(_sqlite(session), prop), site_id, period)
    rows.sort(key=lambda r: (-int(r[1]), r[0]))
    return [
        {"value": r[0], "visitors": int(r[1]), **extras(prop, *[int(n or 0) for n in r[2:]])}
        for r in rows[:limit]
    ]


async def raw_visit_series(
    session: AsyncSession, site_id: str, period: Period, interval: str
) -> dict[str, tuple[int, int]]:
    """Distinct visitors (by event time) and visits (by start) per bucket ('Y-m-d H:00:00')."""
    sqlite = _sqlite(session)
    fmt = "%Y-%m-%d %H:00:00" if interval == "hour" else "%Y-%m-%d 00:00:00"
    bucket = (
        (lambda c: f"strftime('{fmt}', {c})")
        if sqlite
        else (lambda c: f"DATE_FORMAT({c}, '{fmt}')")
    )
    out: dict[str, list[int]] = {}
    where = "site_id = :site AND timestamp >= :low AND timestamp < :high"
    for b, n in await _rows(
        session,
        f"SELECT {bucket('timestamp')} AS b, COUNT(DISTINCT visitor_id) FROM events"
        f" WHERE {where} GROUP BY b",
        site_id,
        period,
    ):
        out.setdefault(str(b), [0, 0])[0] = int(n)
    for b, n in await _rows(
        session,
        f"SELECT {bucket('start')} AS b, COUNT(*) FROM {_visits_in(sqlite)} AS v GROUP BY b",
        site_id,
        period,
    ):
        out.setdefault(str(b), [0, 0])[1] = int(n)
    return {b: (v[0], v[1]) for b, v in out.items()}
