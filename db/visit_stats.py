"""The visitor and visit figures behind /stats/aggregate and /stats/breakdown.

Read from the aggregates the worker keeps (db/rollups/visits.py), never from ``events``.
A single day reads its counters (a primary-key range of ``rollup_day_visits`` or of
``rollup_day_values``); over several days the sums are added and distinct visitors are
counted over the set rows of the range (``COUNT(DISTINCT visitor_hash)``), since a
visitor of two days is one visitor (for device and place values, over the set rows and
the visitor-day profiles together). The figure definitions and their plain-SQL
reference are in ``tests/reference_sql.py``; the derived figures (rates, means) are
computed by the functions here for both.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, Table, distinct, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.limits import PROP_KEY_MAX
from db.models import (
    PROFILE_COLUMNS,
    PROFILE_DIMENSIONS,
    VISIT_DIMENSIONS,
    rollup_day_exit_visitors,
    rollup_day_value_visitors,
    rollup_day_values,
    rollup_day_visit_profiles,
    rollup_day_visitors,
    rollup_day_visits,
)
from db.rollups.visits import (
    EVENT_TYPE,
    EXIT_PAGE,
    PAGE,
    PROPERTIES,
    PROPS_PREFIX,
)
from db.stats import Period

__all__ = ["PROPERTIES", "aggregate", "breakdown", "extras", "summary_figures", "valid_property"]

# Where visits came from: listed with their bounce rate and mean duration.
_ACQUISITION = frozenset(VISIT_DIMENSIONS[: VISIT_DIMENSIONS.index("utm_term") + 1])


def valid_property(name: str) -> bool:
    """A breakdown property: one of :data:`PROPERTIES`, or ``props:<key>`` (key 1..300)."""
    if name in PROPERTIES:
        return True
    key = name.removeprefix(PROPS_PREFIX)
    return key != name and 1 <= len(key) <= PROP_KEY_MAX


def bounce_rate(bounces: int, visits: int) -> int:
    """Integer percent of visits that bounced (0 without visits)."""
    return round(Fraction(100 * bounces, visits)) if visits else 0


def visit_duration(duration_us: int, visits: int) -> int:
    """Mean visit duration in whole seconds (0 without visits)."""
    return round(Fraction(duration_us, visits * 1_000_000)) if visits else 0


def views_per_visit(pageviews: int, visits: int) -> float:
    return float(round(Fraction(pageviews, visits), 2)) if visits else 0


def summary_figures(
    visitors: int, visits: int, bounces: int, duration: int, pageviews: int, bots: int
) -> dict[str, Any]:
    """The aggregate answer from the period's sums."""
    return {
        "visitors": visitors,
        "visits": visits,
        "pageviews": pageviews,
        "views_per_visit": views_per_visit(pageviews, visits),
        "bounce_rate": bounce_rate(bounces, visits),
        "visit_duration": visit_duration(duration, visits),
        "bots": bots,
    }


def extras(
    prop: str, visits: int, bounces: int, duration: int, pageviews: int, events: int
) -> dict[str, Any]:
    """The figures a breakdown row shows besides value and visitors, per property."""
    if prop == PAGE:
        return {"pageviews": pageviews}
    if prop in _ACQUISITION:
        return {
            "visits": visits,
            "bounce_rate": bounce_rate(bounces, visits),
            "visit_duration": visit_duration(duration, visits),
        }
    if prop == EVENT_TYPE or prop.startswith(PROPS_PREFIX):
        return {"events": events}
    return {"visits": visits}


def _days(table: Table, period: Period) -> ColumnElement[bool]:
    if period.days == 1:
        return table.c.day == period.start
    return table.c.day.between(period.start, period.end)


async def aggregate(session: AsyncSession, site_id: str, period: Period) -> dict[str, Any]:
    """visitors, visits, pageviews, views_per_visit, bounce_rate, visit_duration, bots."""
    t = rollup_day_visits
    rows = (
        await session.execute(
            select(
                t.c.visitors, t.c.visits, t.c.bounces, t.c.duration, t.c.pageviews, t.c.bots
            ).where(t.c.site_id == site_id, _days(t, period))
        )
    ).all()
    sums = [sum(int(r[i]) for r in rows) for i in range(6)]
    if sum(1 for r in rows if r[0]) > 1:
        v = rollup_day_visitors
        sums[0] = int(
            await session.scalar(
                select(func.count(distinct(v.c.visitor_hash))).where(
                    v.c.site_id == site_id, _days(v, period)
                )
            )
            or 0
        )
    return summary_figures(*sums)


_FIGURES = ("visits", "bounces", "duration", "pageviews", "events")


async def breakdown(
    session: AsyncSession, site_id: str, period: Period, prop: str, limit: int
) -> list[dict[str, Any]]:
    """The property's values, most visitors first (ties by value), with their extras."""
    t = rollup_day_values
    where = (t.c.site_id == site_id, t.c.property == prop, _days(t, period))
    if period.days == 1:
        stmt = (
            select(t.c.value, t.c.visitors, *[t.c[f] for f in _FIGURES])
            .where(*where, t.c.visitors > 0)
            .order_by(t.c.visitors.desc(), t.c.value.asc())
            .limit(limit)
        )
    else:
        sums = (
            select(
                t.c.value_hash,
                func.max(t.c.value).label("value"),
                *[func.sum(t.c[f]).label(f) for f in _FIGURES],
            )
            .where(*where)
            .group_by(t.c.value_hash)
            .subquery()
        )
        counted = _visitor_counts(site_id, period, prop)
        visitors = counted.c.visitors
        stmt = (
            select(sums.c.value, visitors, *[sums.c[f] for f in _FIGURES])
            .join_from(sums, counted, sums.c.value_hash == counted.c.value_hash)
            .order_by(visitors.desc(), sums.c.value.asc())
            .limit(limit)
        )
    out = []
    for value, visitors_n, *figures in (await session.execute(stmt)).all():
        numbers = [int(n or 0) for n in figures]
        out.append({"value": value, "visitors": int(visitors_n), **extras(prop, *numbers)})
    return out


def _visitor_counts(site_id: str, period: Period, prop: str) -> Any:
    """Distinct visitors per value digest over the period's set rows (a subquery)."""
    if prop == EXIT_PAGE:
        x = rollup_day_exit_visitors
        where: tuple[ColumnElement[bool], ...] = (
            x.c.site_id == site_id,
            _days(x, period),
            x.c.visits > 0,
        )
        key: ColumnElement[Any] = x.c.value_hash
        member: ColumnElement[Any] = x.c.visitor_hash
    else:
        x = rollup_day_value_visitors
        where = (x.c.site_id == site_id, x.c.property == prop, _days(x, period))
        key, member = x.c.value_hash, x.c.visitor_hash
        if prop in PROFILE_DIMENSIONS:
            # A visitor-day's values of a device and place property: its profile's, and
            # set rows for those its profile lacks (db/models.py).
            p = rollup_day_visit_profiles
            column = p.c[PROFILE_COLUMNS[PROFILE_DIMENSIONS.index(prop)]]
            pairs = union_all(
                select(key.label("value_hash"), member.label("visitor_hash")).where(*where),
                select(column, p.c.visitor_hash).where(
                    p.c.site_id == site_id, _days(p, period), column != ""
                ),
            ).subquery()
            key, member, where = pairs.c.value_hash, pairs.c.visitor_hash, ()
    return (
        select(key.label("value_hash"), func.count(distinct(member)).label("visitors"))
        .where(*where)
        .group_by(key)
        .subquery()
    )
