"""Property: every visitor and visit figure equals plain SQL over ``events``, on MariaDB and
SQLite, whatever order and split the batches commit in, and after rebuild-rollups.

Hypothesis generates events across sites, visitors, days (a month end and a leap day),
times close enough to continue visits (across midnight too, and earlier than a visit's
first event), pageviews and other types, dimensions and props, plus bots. The
reference sessionizer (tests/visit_model.py) gives them visits in generation order (the
acceptance order); the events are then shuffled and split into batches written by the
worker's batch writer (with a replayed batch), so a visit's events commit in any order.
Every figure of :mod:`db.visit_stats` (aggregate, each breakdown property, props keys)
and the timeseries' visitors and visits, for single days and ranges, must equal
``tests/reference_sql.py``. Then rebuild-rollups, over the live rows and over emptied
aggregates, must give the same answers.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import rollups, stats, visit_stats
from db.event import Event
from db.models import DAY_FIGURES, ROLLUP_TABLES, rollup_day_visits
from db.rebuild import rebuild
from db.stats import Period
from tests import reference_sql as ref
from tests.db.test_stats_property import engine, reset, write
from tests.helpers import examples
from tests.visit_model import Sessionizer

__all__ = ["engine"]

DAYS = [date(2024, 2, 28) + timedelta(days=i) for i in range(3)]  # 02-28 .. 03-01
SITES = ["s1", "Ü"]
WHO = ["a", "b", "c", "d", "ü"]
TYPES = ["pageview", "pageview", "click", "Click"]
PATHS = st.one_of(st.none(), st.sampled_from(["/", "/a", "/b", "/A", "/é", "/😀", "/a b"]))
DIMS: list[dict[str, str]] = [
    {},
    {"source": "Google", "utm_source": "news", "utm_medium": "mail", "country": "FR"},
    {"source": "Direct / None", "browser": "Chrome", "browser_version": "120", "device": "Mobile"},
    {"source": "é😀", "referrer": "https://x.example/a", "region": "ZH", "city": "Zürich"},
    {"os": "iOS", "os_version": "17", "browser_version": "3", "utm_campaign": "c", "utm_term": "t"},
    {"utm_content": "A", "device": "Desktop", "browser": "Firefox", "os": "Linux"},
]
PROPS: list[dict[str, str] | None] = [
    None,
    {"plan": "pro"},
    {"plan": "Pro", "n": "1"},
    {"a b": "é😀", "x.y": "1"},
]
PROP_NAMES = ["props:plan", "props:n", "props:a b", "props:x.y", "props:none"]
# Seconds into the hour: gaps of up to 30 minutes continue a visit, longer ones do not.
SECONDS = [0, 1, 600, 1799, 3599]

Item = tuple[Event, str | None, dict[str, str] | None]


@st.composite
def an_item(draw: st.DrawFn) -> Item:
    day = draw(st.sampled_from(DAYS))
    when = datetime.combine(day, time(draw(st.sampled_from([0, 1, 23]))), tzinfo=timezone.utc)
    when += timedelta(
        seconds=draw(st.sampled_from(SECONDS)), microseconds=draw(st.sampled_from([0, 7]))
    )
    site = draw(st.sampled_from(SITES))
    kind = draw(st.sampled_from(["visit"] * 8 + ["plain", "bot"]))
    event = Event(
        site,
        draw(st.sampled_from(TYPES)),
        draw(PATHS),
        draw(st.sampled_from([None, "u1", "u2"])),
        when,
        props=draw(st.sampled_from(PROPS)),
        bot=kind == "bot",
    )
    who = draw(st.sampled_from(WHO)) if kind == "visit" else None
    return event, who, draw(st.sampled_from(DIMS))


def bots_of(evs: list[Event]) -> Counter[tuple[str, date]]:
    return Counter((e.site_id, e.timestamp.date()) for e in evs if e.bot)


async def check_all(
    engine: AsyncEngine,
    bots: Counter[tuple[str, date]],
    periods: list[Period],
    limit: int,
    sites: list[str] | None = None,
) -> None:
    """Every figure of :mod:`db.visit_stats` and the timeseries equal the reference."""
    async with AsyncSession(engine) as session:
        for site in [*(SITES if sites is None else sites), "nobody"]:
            for period in periods:
                n_bots = sum(
                    n for (s, d), n in bots.items() if s == site and period.start <= d <= period.end
                )
                got = await visit_stats.aggregate(session, site, period)
                want = await ref.raw_aggregate(session, site, period, n_bots)
                assert got == want, (site, period)
                for prop in [*visit_stats.PROPERTIES, *PROP_NAMES]:
                    got_rows = await visit_stats.breakdown(session, site, period, prop, limit)
                    want_rows = await ref.raw_breakdown(session, site, period, prop, limit)
                    assert got_rows == want_rows, (site, period, prop)
                for interval in ("hour", "day"):
                    got_series = await stats.timeseries(session, site, period, interval, None)
                    want_series = await ref.raw_timeseries(session, site, period, interval, None)
                    assert got_series == want_series, (site, period, interval)


async def empty_aggregates(engine: AsyncEngine) -> None:
    """Delete every aggregate row but the bots (which no rebuild can recompute)."""
    async with engine.begin() as conn:
        for table in ROLLUP_TABLES:
            if table is not rollup_day_visits:
                await conn.execute(delete(table))
        zeros = {name: 0 for name in DAY_FIGURES if name != "bots"}
        await conn.execute(update(rollup_day_visits).values(**zeros))
    rollups.forget(engine)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=st.lists(an_item(), max_size=50),
    seed=st.integers(0, 2**32),
    splits=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5),
    limit=st.integers(min_value=1, max_value=6),
    day=st.sampled_from(DAYS),
    part=st.tuples(st.sampled_from(DAYS), st.sampled_from(DAYS)).map(sorted),
)
async def test_visit_figures_equal_raw_sql(
    engine: AsyncEngine,
    items: list[Item],
    seed: int,
    splits: list[int],
    limit: int,
    day: date,
    part: list[date],
) -> None:
    await reset(engine)
    rng = random.Random(seed)
    evs = Sessionizer(rng).run(items)
    rng.shuffle(evs)  # a visit's events commit in any order, split across batches
    await write(engine, evs, splits)
    periods = [Period(day, day), Period(part[0], part[1]), Period(DAYS[0], DAYS[-1])]
    bots = bots_of(evs)
    await check_all(engine, bots, periods, limit)
    await rebuild(engine)
    await check_all(engine, bots, periods, limit)
    await empty_aggregates(engine)
    await rebuild(engine)
    await check_all(engine, bots, periods, limit)


@pytest.mark.parametrize("splits", [[1], [2], [10]], ids=["one-by-one", "pairs", "together"])
@pytest.mark.parametrize("order", ["accepted", "reversed"])
async def test_a_visitor_day_with_several_device_profiles(
    engine: AsyncEngine, splits: list[int], order: str
) -> None:
    """Deterministic, beside the generated cases: one visitor-day's visits on different
    devices and places (a second and third profile, the first one again), so the values a
    stored profile lacks must still each count the visitor once, whichever visit's batch
    commits first and whether they share a batch."""
    await reset(engine)
    day = DAYS[1]
    items: list[Item] = []
    for hour, dims in [(0, DIMS[2]), (2, DIMS[5]), (4, DIMS[3]), (6, DIMS[2]), (8, DIMS[1])]:
        when = datetime.combine(day, time(hour), tzinfo=timezone.utc)
        for k in range(2):
            event = Event("s1", "pageview", f"/p{k}", None, when + timedelta(seconds=k))
            items.append((event, "a", dims))
    other = Event("s1", "pageview", "/", None, datetime.combine(day, time(1), tzinfo=timezone.utc))
    items.append((other, "b", DIMS[5]))
    evs = Sessionizer(random.Random(7)).run(items)
    if order == "reversed":
        evs.reverse()
    await write(engine, evs, splits)
    await check_all(engine, Counter(), [Period(day, day), Period(DAYS[0], DAYS[-1])], 10, ["s1"])


def test_valid_property() -> None:
    assert all(visit_stats.valid_property(p) for p in visit_stats.PROPERTIES)
    assert visit_stats.valid_property("props:" + "k" * 300)
    assert not visit_stats.valid_property("props:" + "k" * 301)
    assert not visit_stats.valid_property("props:")
    assert not visit_stats.valid_property("pages")
