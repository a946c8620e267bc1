"""Concurrent batches of the same visits, on MariaDB: every visit figure stays exact.

Several connections commit batches holding events of the same visits at once (a
visit's events shuffled across batches), so the same distinct-visitor rows are
inserted and the same exit-page rows moved up and down by transactions racing each
other. Deadlocks are retried as the worker does (the whole batch again). The figures
must equal the plain-SQL reference, and rebuild-rollups must then change nothing.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asyncworker.writer import is_transient, write_batch
from db.event import Event
from db.models import rollup_day_exit_visitors, rollup_day_visit_profiles
from db.rebuild import rebuild
from db.stats import Period
from db.visit import Visit, VisitState, to_us
from tests.db.test_stats_property import engine, reset
from tests.db.test_visits_property import DIMS, PROPS, bots_of, check_all
from tests.visit_model import Sessionizer, visitor_of

__all__ = ["engine"]

DAY = date(2024, 3, 31)


def visits_stream(rng: random.Random, n: int) -> list[Event]:
    """``n`` events of 40 visitors of two sites over two days, minutes apart, accepted in
    time order (so most visits have several events and move their exit page)."""
    items = []
    start = datetime(DAY.year, DAY.month, DAY.day, 22, tzinfo=timezone.utc)
    for i in range(n):
        when = start + timedelta(seconds=i * 7 + rng.randrange(5))
        site = rng.choice(["c1", "c2"])
        event = Event(
            site,
            rng.choice(["pageview", "pageview", "pageview", "click"]),
            rng.choice(["/", "/a", "/b", "/c", "/d", None]),
            None,
            when,
            props=rng.choice(PROPS),
            bot=rng.random() < 0.02,
        )
        who = None if event.bot else f"v{rng.randrange(40)}"
        items.append((event, who, rng.choice(DIMS)))
    return Sessionizer(rng).run(items)


async def test_concurrent_batches_of_the_same_visits_are_exact(
    engine: AsyncEngine, database_url: str
) -> None:
    if "sqlite" in database_url:
        pytest.skip("SQLite has one writer at a time; the race is MariaDB's")
    await reset(engine)
    rng = random.Random(9)
    evs = visits_stream(rng, 3000)
    rng.shuffle(evs)
    batches = [evs[i : i + 15] for i in range(0, len(evs), 15)]
    pending = iter(batches)
    retried = 0

    async def loop() -> None:
        nonlocal retried
        for batch in pending:
            batch_id = uuid.uuid4().hex
            while True:
                try:
                    await write_batch(engine, batch_id, batch)
                    break
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    retried += 1
                    await asyncio.sleep(0.005)

    await asyncio.gather(*(loop() for _ in range(6)))
    async with engine.connect() as conn:
        left = await conn.scalar(select(func.count()).where(rollup_day_exit_visitors.c.visits == 0))
    assert left, "exit pages should have moved away from some (page, visitor) pairs"
    days = [DAY, DAY + timedelta(days=1)]
    periods = [Period(DAY, DAY), Period(days[1], days[1]), Period(DAY, days[1])]
    bots = bots_of(evs)
    await check_all(engine, bots, periods, limit=10, sites=["c1", "c2"])
    await rebuild(engine)
    await check_all(engine, bots, periods, limit=10, sites=["c1", "c2"])


async def test_site_ids_equal_but_for_trailing_spaces_share_visitor_rows_without_error(
    engine: AsyncEngine,
) -> None:
    """A user id's visitor digest is the same on every site, and MariaDB's PAD SPACE
    collation makes site ``"pad"`` and ``"pad "`` one key: the profile and exit rows the
    writer locks and reads back come back under the other spelling. Such batches must
    still be written (the documented difference is only that MariaDB merges the two)."""
    await reset(engine)
    when = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=timezone.utc)
    at = to_us(when)
    dims = {"source": "Direct / None", "browser": "Firefox", "country": "FR"}
    visitor = visitor_of("any", "same-user")
    for n, site in enumerate(["pad", "pad "]):
        state = VisitState(1, at, at, "/p", "/p")
        visit = Visit(visitor, 100 + n, 1, at, dims, None, state)
        event = Event(site, "pageview", "/p", "same-user", when, visit=visit)
        assert await write_batch(engine, uuid.uuid4().hex, [event])
    async with engine.connect() as conn:
        stored = await conn.scalar(select(func.count()).select_from(rollup_day_visit_profiles))
    assert stored in (1, 2)  # one row on MariaDB (PAD SPACE), two on SQLite
