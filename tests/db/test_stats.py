"""Every stats rule, answered from the rollups, on MariaDB and SQLite.

Events are written by the worker's real batch writer (``write_batch``: ledger row,
raw insert and rollup deltas in one transaction), then read over HTTP from the
real ASGI app. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from asyncworker.writer import write_batch
from db.engine import create_engine
from db.event import Event
from db.settings import Settings

DAY = date(2024, 3, 10)
Write = Callable[..., Awaitable[None]]


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=timezone.utc)


def ev(
    path: str | None = "/",
    user: str | None = None,
    *,
    site: str = "site-a",
    type: str = "pageview",
    when: datetime | None = None,
) -> Event:
    return Event(site, type, path, user, when or at(DAY))


@pytest.fixture
async def engine(schema: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(schema)
    yield engine
    await engine.dispose()


@pytest.fixture
def write(engine: AsyncEngine) -> Write:
    """Write events through the worker's batch writer, in batches of ``size``."""

    async def go(events: Sequence[Event], size: int = 500) -> None:
        for start in range(0, len(events), size):
            assert await write_batch(engine, uuid.uuid4().hex, events[start : start + size])

    return go


async def stats(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/stats", params={"site_id": "site-a", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def series(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/stats/timeseries", params={"site_id": "site-a", **params})
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


# ---------------------------------------------------------------- one day


async def test_counts_users_and_top_paths(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev("/home", "u1"),
            ev("/home", "u2"),
            ev("/home", "u1"),
            ev("/about", "u3"),
            ev("/about", None),
            ev(None, "u4"),
            ev(None, None),
        ]
    )
    assert await stats(client, date=DAY.isoformat()) == {
        "site_id": "site-a",
        "date": DAY.isoformat(),
        "total_views": 7,
        "unique_users": 4,
        "top_paths": [{"path": "/home", "views": 3}, {"path": "/about", "views": 2}],
    }


async def test_ties_are_ordered_by_path_and_limit_applies(
    client: httpx.AsyncClient, write: Write
) -> None:
    await write([ev(p) for p in ["/b", "/a", "/c", "/B", "/a", "/b", "/z", "/z", "/é"]])
    body = await stats(client, date=DAY.isoformat(), limit=3)
    assert body["top_paths"] == [
        {"path": "/a", "views": 2},
        {"path": "/b", "views": 2},
        {"path": "/z", "views": 2},
    ]
    body = await stats(client, date=DAY.isoformat(), limit=100)
    assert [p["path"] for p in body["top_paths"]] == ["/a", "/b", "/z", "/B", "/c", "/é"]


async def test_users_are_counted_once_across_batches_and_types(
    client: httpx.AsyncClient, write: Write
) -> None:
    events = [ev("/", f"u{i % 7}", type="click" if i % 2 else "pageview") for i in range(40)]
    await write(events, size=3)
    body = await stats(client, date=DAY.isoformat())
    assert (body["total_views"], body["unique_users"]) == (40, 7)


async def test_case_and_unicode_are_distinct_users_and_paths(
    client: httpx.AsyncClient, write: Write
) -> None:
    await write([ev("/a", "u"), ev("/A", "U"), ev("/😀", "😀"), ev("/😀", "ü")])
    body = await stats(client, date=DAY.isoformat())
    assert body["unique_users"] == 4
    assert body["top_paths"][0] == {"path": "/😀", "views": 2}
    assert len(body["top_paths"]) == 3


async def test_event_type_filter(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev("/a", "u1", type="pageview"),
            ev("/a", "u2", type="pageview"),
            ev("/b", "u1", type="click"),
            ev("/b", "u3", type="click"),
            ev("/b", "u3", type="click"),
            ev(None, "u4", type="signup"),
        ]
    )
    click = await stats(client, date=DAY.isoformat(), event_type="click")
    assert (click["total_views"], click["unique_users"]) == (3, 2)
    assert click["top_paths"] == [{"path": "/b", "views": 3}]
    signup = await stats(client, date=DAY.isoformat(), event_type="signup")
    assert (signup["total_views"], signup["unique_users"], signup["top_paths"]) == (1, 1, [])
    other = await stats(client, date=DAY.isoformat(), event_type="nope")
    assert (other["total_views"], other["unique_users"], other["top_paths"]) == (0, 0, [])
    every = await stats(client, date=DAY.isoformat(), event_type="")
    assert (every["total_views"], every["unique_users"]) == (6, 4)


async def test_other_days_and_sites_do_not_leak(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev("/in", "u1", when=at(DAY, 0, 0, 0, 0)),
            ev("/in", "u2", when=at(DAY, 23, 59, 59, 999999)),
            ev("/prev", "u3", when=at(DAY - timedelta(days=1), 23, 59, 59, 999999)),
            ev("/next", "u4", when=at(DAY + timedelta(days=1), 0, 0, 0, 0)),
            ev("/other", "u5", site="site-b"),
            ev("/other", "u6", site="site-a2"),
        ]
    )
    body = await stats(client, date=DAY.isoformat())
    assert (body["total_views"], body["unique_users"]) == (2, 2)
    assert body["top_paths"] == [{"path": "/in", "views": 2}]
    nothing = await stats(client, site_id="site-c", date=DAY.isoformat())
    assert (nothing["total_views"], nothing["unique_users"], nothing["top_paths"]) == (0, 0, [])


async def test_timestamps_with_offsets_land_on_their_utc_day(
    client: httpx.AsyncClient, write: Write
) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(DAY.year, DAY.month, DAY.day, 1, 30, tzinfo=plus2)  # 23:30 UTC the day before
    await write([ev("/x", "u1", when=local.astimezone(timezone.utc))])
    before = await stats(client, date=(DAY - timedelta(days=1)).isoformat())
    assert before["total_views"] == 1
    assert (await stats(client, date=DAY.isoformat()))["total_views"] == 0


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1", "1.5"])
async def test_limit_validation(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get("/stats", params={"site_id": "site-a", "limit": limit})
    assert response.status_code == 400
    assert response.json() == {"error": "limit must be an integer between 1 and 100"}


async def test_replayed_batch_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    batch = [ev("/a", "u1"), ev("/b", "u2")]
    assert await write_batch(engine, "batch-1", batch)
    assert not await write_batch(engine, "batch-1", batch)
    body = await stats(client, date=DAY.isoformat())
    assert (body["total_views"], body["unique_users"]) == (2, 2)
    sites = (await client.get("/sites")).json()
    assert sites == {"sites": [{"site_id": "site-a", "total_events": 2}]}


# ---------------------------------------------------------------- ranges


async def test_range_counts_each_user_once(client: httpx.AsyncClient, write: Write) -> None:
    days = [DAY + timedelta(days=i) for i in range(5)]
    events = [ev("/a", "u1", when=at(d)) for d in days]  # u1 every day
    events += [ev("/b", f"d{i}", when=at(d)) for i, d in enumerate(days)]  # one new user a day
    events += [ev("/b", None, when=at(days[2]))]
    await write(events)
    body = await stats(client, **{"from": days[0].isoformat(), "to": days[-1].isoformat()})
    assert body == {
        "site_id": "site-a",
        "from": days[0].isoformat(),
        "to": days[-1].isoformat(),
        "total_views": 11,
        "unique_users": 6,
        "unique_users_exact": True,
        "top_paths": [{"path": "/b", "views": 6}, {"path": "/a", "views": 5}],
    }
    part = await stats(client, **{"from": days[1].isoformat(), "to": days[2].isoformat()})
    assert (part["total_views"], part["unique_users"]) == (5, 3)
    assert part["top_paths"] == [{"path": "/b", "views": 3}, {"path": "/a", "views": 2}]
    typed = await stats(
        client,
        **{"from": days[0].isoformat(), "to": days[-1].isoformat(), "event_type": "click"},
    )
    assert (typed["total_views"], typed["unique_users"], typed["top_paths"]) == (0, 0, [])


async def test_range_ties_and_limit(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev("/y", when=at(DAY)),
            ev("/x", when=at(DAY + timedelta(days=1))),
            ev("/w", when=at(DAY + timedelta(days=2))),
            ev("/x", when=at(DAY + timedelta(days=2))),
        ]
    )
    body = await stats(
        client,
        **{"from": DAY.isoformat(), "to": (DAY + timedelta(days=2)).isoformat(), "limit": 2},
    )
    assert body["top_paths"] == [{"path": "/x", "views": 2}, {"path": "/w", "views": 1}]


async def test_range_with_users_on_one_day_only(client: httpx.AsyncClient, write: Write) -> None:
    await write([ev("/a", "u1"), ev("/a", "u2"), ev("/a", "u1")])
    body = await stats(
        client,
        **{
            "from": (DAY - timedelta(days=15)).isoformat(),
            "to": (DAY + timedelta(days=14)).isoformat(),
        },
    )
    assert (body["total_views"], body["unique_users"]) == (3, 2)
    assert body["top_paths"] == [{"path": "/a", "views": 3}]


async def test_range_of_more_than_366_days_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/stats", params={"site_id": "site-a", "from": "2024-01-01", "to": "2025-01-01"}
    )
    assert response.status_code == 400


async def test_event_types_over_a_range(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev(type="pageview"),
            ev(type="pageview", when=at(DAY + timedelta(days=1))),
            ev(type="click"),
            ev(type="buy", when=at(DAY + timedelta(days=1))),
            ev(type="zzz", when=at(DAY + timedelta(days=3))),
        ]
    )
    response = await client.get(
        "/stats/event-types",
        params={
            "site_id": "site-a",
            "from": DAY.isoformat(),
            "to": (DAY + timedelta(days=1)).isoformat(),
        },
    )
    assert response.json() == {
        "site_id": "site-a",
        "from": DAY.isoformat(),
        "to": (DAY + timedelta(days=1)).isoformat(),
        "event_types": [
            {"event_type": "pageview", "count": 2},
            {"event_type": "buy", "count": 1},
            {"event_type": "click", "count": 1},
        ],
    }


# ---------------------------------------------------------------- time series


async def test_hourly_series_has_every_hour(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev(user="u1", when=at(DAY, 0, 5)),
            ev(user="u1", when=at(DAY, 0, 55)),
            ev(user="u2", when=at(DAY, 0, 59, 59, 999999)),
            ev(user=None, when=at(DAY, 13)),
            ev(user="u3", when=at(DAY, 23, 59), type="click"),
            ev(user="u3", when=at(DAY + timedelta(days=1), 0, 0)),
        ]
    )
    got = await series(client, date=DAY.isoformat(), interval="hour")
    assert len(got) == 24
    assert [b["t"] for b in got[:2]] == [f"{DAY}T00:00:00Z", f"{DAY}T01:00:00Z"]
    assert got[0] == {
        "t": f"{DAY}T00:00:00Z",
        "views": 3,
        "unique_users": 2,
        "visitors": 0,
        "visits": 0,
    }
    assert got[13] == {
        "t": f"{DAY}T13:00:00Z",
        "views": 1,
        "unique_users": 0,
        "visitors": 0,
        "visits": 0,
    }
    assert got[23] == {
        "t": f"{DAY}T23:00:00Z",
        "views": 1,
        "unique_users": 1,
        "visitors": 0,
        "visits": 0,
    }
    assert sum(b["views"] for b in got) == 5
    assert all(
        b == {"t": b["t"], "views": 0, "unique_users": 0, "visitors": 0, "visits": 0}
        for b in got[1:13]
    )
    clicks = await series(client, date=DAY.isoformat(), interval="hour", event_type="click")
    assert [b["views"] for b in clicks] == [0] * 23 + [1]


async def test_daily_series_over_a_range(client: httpx.AsyncClient, write: Write) -> None:
    await write(
        [
            ev(user="u1", when=at(DAY, 1)),
            ev(user="u1", when=at(DAY, 20)),
            ev(user="u2", when=at(DAY + timedelta(days=2), 3)),
        ]
    )
    got = await series(
        client, **{"from": DAY.isoformat(), "to": (DAY + timedelta(days=3)).isoformat()}
    )
    assert got == [
        {"t": f"{DAY}T00:00:00Z", "views": 2, "unique_users": 1, "visitors": 0, "visits": 0},
        {
            "t": f"{DAY + timedelta(days=1)}T00:00:00Z",
            "views": 0,
            "unique_users": 0,
            "visitors": 0,
            "visits": 0,
        },
        {
            "t": f"{DAY + timedelta(days=2)}T00:00:00Z",
            "views": 1,
            "unique_users": 1,
            "visitors": 0,
            "visits": 0,
        },
        {
            "t": f"{DAY + timedelta(days=3)}T00:00:00Z",
            "views": 0,
            "unique_users": 0,
            "visitors": 0,
            "visits": 0,
        },
    ]
    hourly = await series(
        client,
        **{
            "from": DAY.isoformat(),
            "to": (DAY + timedelta(days=1)).isoformat(),
            "interval": "hour",
        },
    )
    assert len(hourly) == 48 and sum(b["views"] for b in hourly) == 2


# ---------------------------------------------------------------- sites


async def test_sites_with_totals(client: httpx.AsyncClient, write: Write) -> None:
    assert (await client.get("/sites")).json() == {"sites": []}
    await write(
        [ev(site="b"), ev(site="b", when=at(DAY + timedelta(days=40))), ev(site="a"), ev(site="c")]
    )
    await write([ev(site="c", type="click"), ev(site="c")])
    assert (await client.get("/sites")).json() == {
        "sites": [
            {"site_id": "c", "total_events": 3},
            {"site_id": "b", "total_events": 2},
            {"site_id": "a", "total_events": 1},
        ]
    }


# ---------------------------------------------------------------- concurrency


async def test_concurrent_writers_keep_distinct_users_exact(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Several transactions commit into the same site-day and hour with overlapping users."""
    batches = [
        [ev(f"/p{(b + i) % 5}", f"u{(b * 7 + i) % 23}", when=at(DAY, 10, i)) for i in range(30)]
        for b in range(24)
    ]

    async def one(batch: list[Event]) -> None:
        batch_id = uuid.uuid4().hex
        for attempt in range(50):  # the worker retries deadlocks the same way
            try:
                await write_batch(engine, batch_id, batch)
                return
            except Exception as exc:
                from asyncworker.writer import is_transient

                if not is_transient(exc) or attempt == 49:
                    raise
                await asyncio.sleep(0.01 * attempt)

    await asyncio.gather(*(one(b) for b in batches))
    body = await stats(client, date=DAY.isoformat())
    assert (body["total_views"], body["unique_users"]) == (24 * 30, 23)
    hour = (await series(client, date=DAY.isoformat(), interval="hour"))[10]
    assert (hour["views"], hour["unique_users"]) == (24 * 30, 23)
