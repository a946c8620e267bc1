"""The lists of sites a reader sees, one bounded page at a time, searchable by name.

Anyone may send events for any name (unless ``REGISTERED_SITES_ONLY``), so the sites
with events are as many as senders make up: every list is read a page at a time
(``LIMIT``/``OFFSET`` in SQL, never the whole list in Python) and filtered in SQL by a
case-insensitive substring of the name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from db.models import rollup_sites, sites


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, and whether more follow."""

    rows: list[dict[str, Any]]
    more: bool


def _matching(column: ColumnElement[str], query: str) -> ColumnElement[bool]:
    return func.lower(column).contains(query.lower(), autoescape=True)


async def with_events(
    s: AsyncSession,
    *,
    readable: Iterable[str] | None,
    registered_too: bool,
    query: str = "",
    offset: int = 0,
    limit: int = 100,
) -> Page:
    """``{"site_id", "total_events"}`` rows, busiest first then by name: the sites with
    events, and with ``registered_too`` the registered ones that have none yet (0).
    ``readable``: only these names (None: every site)."""
    seen = select(rollup_sites.c.site_id, rollup_sites.c.events.label("n")).where(
        rollup_sites.c.events > 0
    )
    parts = [seen]
    if registered_too:
        has_events = (
            select(literal(1))
            .where(rollup_sites.c.site_id == sites.c.site_id, rollup_sites.c.events > 0)
            .correlate(sites)
        )
        parts.append(select(sites.c.site_id, literal(0).label("n")).where(~exists(has_events)))
    listed = union_all(*parts).subquery()
    found = select(listed.c.site_id, listed.c.n)
    if readable is not None:
        found = found.where(listed.c.site_id.in_(list(readable)))
    if query:
        found = found.where(_matching(listed.c.site_id, query))
    found = found.order_by(listed.c.n.desc(), listed.c.site_id).offset(offset).limit(limit + 1)
    rows = [{"site_id": site, "total_events": int(n)} for site, n in await s.execute(found)]
    return Page(rows[:limit], len(rows) > limit)


async def registered(
    s: AsyncSession,
    *,
    readable: Iterable[str] | None,
    query: str = "",
    names: Iterable[str] | None = None,
    limit: int = 100,
) -> list[str]:
    """Registered site names, by name: only ``readable`` ones (None: all), matching
    ``query``, among ``names`` when given; at most ``limit``."""
    found = select(sites.c.site_id)
    if readable is not None:
        found = found.where(sites.c.site_id.in_(list(readable)))
    if names is not None:
        found = found.where(sites.c.site_id.in_(list(names)))
    if query:
        found = found.where(_matching(sites.c.site_id, query))
    return list((await s.execute(found.order_by(sites.c.site_id).limit(limit))).scalars())
