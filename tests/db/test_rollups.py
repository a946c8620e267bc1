"""The rollup tables themselves: migration, rebuild-rollups, rebuild racing the writer."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asyncworker.writer import is_transient, write_batch
from db import rollups
from db.engine import create_engine
from db.event import Event
from db.models import ROLLUP_TABLES, events, rollup_day_paths, rollup_days, rollup_sites
from db.rebuild import rebuild
from db.schema import alembic_config, init_db
from db.settings import Settings
from tests.conftest import ROOT, process_env

DAY = date(2024, 5, 20)


def random_events(rng: random.Random, n: int, sites: int = 3, days: int = 3) -> list[Event]:
    out = []
    for _ in range(n):
        day = DAY + timedelta(days=rng.randrange(days))
        when = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(
            seconds=rng.randrange(86400), microseconds=rng.randrange(1_000_000)
        )
        out.append(
            Event(
                f"site-{rng.randrange(sites)}",
                rng.choice(["pageview", "click", "buy"]),
                rng.choice([None, "/", "/a", "/b", "/c/d", "/ü"]),
                rng.choice([None, *(f"u{i}" for i in range(15))]),
                when,
            )
        )
    return out


@pytest.fixture
async def engine(schema: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(schema)
    yield engine
    await engine.dispose()


async def write_all(engine: AsyncEngine, evs: list[Event], size: int = 50) -> None:
    for start in range(0, len(evs), size):
        batch = evs[start : start + size]
        batch_id = uuid.uuid4().hex
        for attempt in range(100):
            try:
                await write_batch(engine, batch_id, batch)
                break
            except Exception as exc:
                if not is_transient(exc) or attempt == 99:
                    raise
                await asyncio.sleep(0.01)


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row (without the writer's token, which differs by design)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in ROLLUP_TABLES:
            cols = [c for c in table.c if c.name != "token"]
            rows = (await conn.execute(select(*cols))).all()
            out[table.name] = sorted(tuple(r) for r in rows)
    return out


async def clear_rollups(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in ROLLUP_TABLES:
            await conn.execute(delete(table))
    rollups.forget(engine)  # rows deleted behind the writer's membership cache


async def test_migrations_create_the_rollup_tables_and_are_idempotent(
    engine: AsyncEngine,
) -> None:
    await init_db(engine)  # second run: nothing to do
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
    assert {t.name for t in ROLLUP_TABLES} <= names
    # At the head revision (0002 brought the rollups; later revisions keep them).
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_an_0001_database_upgrades_in_place(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
        async with engine.begin() as conn:
            await conn.execute(
                events.insert(),
                [
                    {
                        "site_id": "old",
                        "event_type": "pageview",
                        "path": "/",
                        "user_id": "u",
                        "timestamp": datetime(2024, 1, 1, 10),
                    }
                ],
            )
        await init_db(engine)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {t.name for t in ROLLUP_TABLES} <= names
        await rebuild(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(rollup_days))).all()
        assert {(r.site_id, r.scope, r.event_type, r.events, r.users) for r in rows} == {
            ("old", 0, "", 1, 1),
            ("old", 1, "pageview", 1, 1),
        }
    finally:
        await engine.dispose()


async def test_rebuild_after_dropping_aggregates_gives_the_same_rows(
    engine: AsyncEngine,
) -> None:
    await write_all(engine, random_events(random.Random(7), 400))
    kept = await snapshot(engine)
    assert kept["rollup_days"] and kept["rollup_hour_users"] and kept["rollup_day_paths"]
    await clear_rollups(engine)
    planned: list[int] = []
    done: list[tuple[str, date, int]] = []
    report = await rebuild(engine, on_plan=planned.append, on_day=lambda *a: done.append(a))
    assert await snapshot(engine) == kept
    assert report.events == 400 and sum(n for *_, n in done) == 400
    assert planned == [len(done)] == [report.site_days] == [9]
    # Rebuilding over correct aggregates changes nothing either.
    await rebuild(engine)
    assert await snapshot(engine) == kept


async def test_rebuild_of_one_site_and_range_touches_only_those(engine: AsyncEngine) -> None:
    await write_all(engine, random_events(random.Random(3), 300))
    kept = await snapshot(engine)
    await clear_rollups(engine)
    report = await rebuild(
        engine, site="site-1", start=DAY + timedelta(days=1), end=DAY + timedelta(days=1)
    )
    assert report.site_days == 1 and report.sites == ["site-1"]
    got = await snapshot(engine)
    assert {r[0] for r in got["rollup_days"]} == {"site-1"}
    assert {r[3] for r in got["rollup_days"]} == {DAY + timedelta(days=1)}
    expected = [
        r for r in kept["rollup_days"] if r[0] == "site-1" and r[3] == DAY + timedelta(days=1)
    ]
    assert got["rollup_days"] == expected


async def test_rebuild_removes_rollups_of_days_without_events(engine: AsyncEngine) -> None:
    await write_all(engine, random_events(random.Random(5), 100, sites=1))
    async with engine.begin() as conn:
        await conn.execute(
            delete(events).where(
                events.c.timestamp >= datetime.combine(DAY + timedelta(days=1), datetime.min.time())
            )
        )
    await rebuild(engine)
    got = await snapshot(engine)
    assert {r[3] for r in got["rollup_days"]} == {DAY}
    assert all(r[3].date() == DAY for r in got["rollup_hours"])
    async with engine.connect() as conn:
        total = (await conn.exec_driver_sql("SELECT COUNT(*) FROM events")).scalar()
    assert got["rollup_sites"] == [("site-0", total)]


async def test_rebuild_while_the_writer_writes_into_the_same_days(
    engine: AsyncEngine, database_url: str
) -> None:
    """Rebuilds racing batches into the same site-days end with the same rows as a clean rebuild."""
    if "sqlite" in database_url:
        pytest.skip("SQLite has one writer at a time; the race is MariaDB's")
    rng = random.Random(11)
    await write_all(engine, random_events(rng, 300, sites=2, days=2))
    stream = random_events(rng, 8000, sites=2, days=2)
    during = 0

    async def writer(part: list[Event]) -> None:
        # Keeps committing (its events again, as new batches, if it runs out) until two
        # whole rebuilds ran beside it, however fast the writer or slow a rebuild is, so
        # the race is always exercised.
        for _ in range(10):
            for start in range(0, len(part), 10):
                if during >= 2:
                    return
                await write_all(engine, part[start : start + 10], size=10)

    writing = asyncio.gather(*(writer(stream[i::4]) for i in range(4)))
    while not writing.done():
        await rebuild(engine)
        during += 0 if writing.done() else 1
    await writing
    assert during >= 1  # at least one whole rebuild ran while batches were committing
    live = await snapshot(engine)
    await clear_rollups(engine)
    await rebuild(engine)
    assert live == await snapshot(engine)


def test_rebuild_rollups_command(schema: Settings, tmp_path: Any) -> None:
    async def seed() -> None:
        engine = create_engine(schema)
        await write_all(engine, random_events(random.Random(1), 50, sites=2, days=2))
        await clear_rollups(engine)
        await engine.dispose()

    asyncio.run(seed())
    env = process_env(
        {
            "DATABASE_URL": schema.database_url.render_as_string(hide_password=False),
            "ANALYTICS_DATA_DIR": str(tmp_path),
        }
    )
    env.pop("CI", None)
    run = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "rebuild-rollups", "--from", DAY.isoformat()],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Rebuilt 4 site-day(s) of 2 site(s) from 50 event(s)." in run.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "webapp.cli",
            "rebuild-rollups",
            "--from",
            "2024-02-02",
            "--to",
            "2024-02-01",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--from must not be after --to" in bad.stderr


async def test_strings_that_need_escaping_are_stored_as_sent(engine: AsyncEngine) -> None:
    """On MySQL the rows are rendered as SQL literals: quotes, backslashes, % and NUL survive."""
    when = datetime(2024, 5, 20, 10, 30, 0, 123456, tzinfo=timezone.utc)
    odd = ["a'b", 'q"q', "back\\slash", "50%", "%s %d %%", "nul\x00x", "é😀", "'; DROP x; --"]
    types = odd[1:] + odd[:1]
    evs = [Event(s, t, "/" + s, s, when) for s, t in zip(odd, types, strict=True)]
    await write_all(engine, evs, size=len(evs))
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(events.c.site_id, events.c.event_type, events.c.path, events.c.user_id)
            )
        ).all()
        paths = (await conn.execute(select(rollup_day_paths.c.path).distinct())).scalars()
        sites = (await conn.execute(select(rollup_sites.c.site_id))).scalars()
        stamps = (await conn.execute(select(events.c.timestamp))).scalars()
        path_set, site_set, stamp_set = set(paths), set(sites), set(stamps)
    assert sorted(tuple(r) for r in stored) == sorted(
        (e.site_id, e.event_type, e.path, e.user_id) for e in evs
    )
    assert path_set == {e.path for e in evs}
    assert site_set == set(odd)
    assert stamp_set == {when.replace(tzinfo=None)}


async def test_long_batches_split_into_bounded_statements(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statements rendered as literals are split by size and rows; the result is the same."""
    evs = random_events(random.Random(3), 300)
    monkeypatch.setattr(rollups.literals, "MAX_STATEMENT_CHARS", 300)
    monkeypatch.setattr(rollups.dialect, "CHUNK_ROWS", 7)
    await write_all(engine, evs, size=300)
    live = await snapshot(engine)
    async with engine.connect() as conn:
        count = (await conn.exec_driver_sql("SELECT COUNT(*) FROM events")).scalar()
    assert count == len(evs)
    await clear_rollups(engine)
    await rebuild(engine)
    assert live == await snapshot(engine)


async def test_the_membership_cache_follows_its_configured_size(engine: AsyncEngine) -> None:
    """ROLLUP_CACHE_SIZE reaches the cache through configure_cache; 0 turns it off, and
    the figures are the same either way."""
    evs = random_events(random.Random(7), 60)
    rollups.configure_cache(engine, 0)
    await write_all(engine, evs[:30])
    assert rollups.cache_of(engine.sync_engine).size == 0
    rollups.configure_cache(engine, 100_000)
    await write_all(engine, evs[30:])
    assert rollups.cache_of(engine.sync_engine).size > 0
    with_cache = await snapshot(engine)
    await clear_rollups(engine)
    await rebuild(engine)
    assert await snapshot(engine) == with_cache
