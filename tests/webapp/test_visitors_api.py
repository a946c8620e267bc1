"""/stats/aggregate, /stats/breakdown and the timeseries' visitors, end to end.

Events go through the real edge (enrichment, salt, the enqueue script) into real Redis,
are stored by the worker's own batch writer, and are read back over HTTP. The
scenario is small enough to work out by hand; the property tests check the same
figures against plain SQL on random data.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from asyncworker.writer import write_batch
from db.engine import create_engine
from db.event import decode_wire
from db.settings import Settings

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36"
)
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36"
DAY = "2026-03-01"
SITE = "va"


async def send(client: httpx.AsyncClient, ua: str, address: str, time: str, **fields: Any) -> None:
    body = {"site_id": SITE, "event_type": "pageview", "timestamp": f"{DAY}T{time}:00Z"}
    body.update(fields)
    headers = {"User-Agent": ua, "X-Forwarded-For": address}
    response = await client.post("/event", json=body, headers=headers)
    assert response.status_code == 202, response.text


async def drain(redis: Redis, settings: Settings) -> None:
    """Store what the edge queued, as the worker does (one batch)."""
    raw = await redis.lrange(settings.queue_name, 0, -1)
    await redis.delete(settings.queue_name)
    engine = create_engine(settings)
    try:
        assert await write_batch(engine, uuid.uuid4().hex, [decode_wire(m) for m in raw[::-1]])
    finally:
        await engine.dispose()


@pytest.fixture
async def scenario(client: httpx.AsyncClient, redis_client: Redis, schema: Settings) -> None:
    """A: a three-event visit from a newsletter, then a bounce; B: a bounce from Hacker
    News on a phone; and a headless browser (a bot)."""
    url = "https://va.example"
    google = "https://www.google.com/"
    await send(
        client, FIREFOX, "81.2.69.160", "12:00", url=f"{url}/a?utm_source=news", referrer=google
    )
    await send(client, FIREFOX, "81.2.69.160", "12:10", url=f"{url}/b", referrer=f"{url}/a")
    await send(client, FIREFOX, "81.2.69.160", "12:12", event_type="signup", props={"plan": "pro"})
    await send(
        client,
        PHONE,
        "81.2.69.161",
        "13:00",
        url=f"{url}/a",
        referrer="https://news.ycombinator.com/item?id=1",
        screen_width=390,
    )
    await send(client, FIREFOX, "81.2.69.160", "15:00", url=f"{url}/c")
    await send(client, HEADLESS, "81.2.69.162", "12:30", url=f"{url}/a")
    await drain(redis_client, schema)


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params={"site_id": SITE, "date": DAY, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def breakdown(client: httpx.AsyncClient, prop: str, **params: Any) -> list[dict[str, Any]]:
    body = await get(client, "/stats/breakdown", property=prop, **params)
    assert (body["site_id"], body["property"], body["from"], body["to"]) == (SITE, prop, DAY, DAY)
    results: list[dict[str, Any]] = body["results"]
    return results


async def test_aggregate(client: httpx.AsyncClient, scenario: None) -> None:
    assert await get(client, "/stats/aggregate") == {
        "site_id": SITE,
        "from": DAY,
        "to": DAY,
        "visitors": 2,
        "visits": 3,
        "pageviews": 4,
        "views_per_visit": 1.33,
        "bounce_rate": 67,
        "visit_duration": 240,
        "bots": 1,
    }


async def test_sources_and_pages(client: httpx.AsyncClient, scenario: None) -> None:
    bounce = {"visits": 1, "bounce_rate": 100, "visit_duration": 0}
    assert await breakdown(client, "source") == [
        {"value": "Direct / None", "visitors": 1, **bounce},
        {"value": "Hacker News", "visitors": 1, **bounce},
        {"value": "news", "visitors": 1, "visits": 1, "bounce_rate": 0, "visit_duration": 720},
    ]
    assert await breakdown(client, "utm_source") == [
        {"value": "news", "visitors": 1, "visits": 1, "bounce_rate": 0, "visit_duration": 720}
    ]
    assert await breakdown(client, "page") == [
        {"value": "/a", "visitors": 2, "pageviews": 2},
        {"value": "/b", "visitors": 1, "pageviews": 1},
        {"value": "/c", "visitors": 1, "pageviews": 1},
    ]
    assert await breakdown(client, "entry_page") == [
        {"value": "/a", "visitors": 2, "visits": 2},
        {"value": "/c", "visitors": 1, "visits": 1},
    ]
    assert await breakdown(client, "exit_page") == [
        {"value": "/a", "visitors": 1, "visits": 1},
        {"value": "/b", "visitors": 1, "visits": 1},
        {"value": "/c", "visitors": 1, "visits": 1},
    ]
    assert await breakdown(client, "page", limit="1") == [
        {"value": "/a", "visitors": 2, "pageviews": 2}
    ]


async def test_devices_events_and_props(client: httpx.AsyncClient, scenario: None) -> None:
    devices = await breakdown(client, "device")
    assert [(r["value"], r["visitors"]) for r in devices] == [("Desktop", 1), ("Mobile", 1)]
    browsers = await breakdown(client, "browser")
    assert [(r["value"], r["visitors"]) for r in browsers] == [("Chrome Mobile", 1), ("Firefox", 1)]
    assert await breakdown(client, "event_type") == [
        {"value": "pageview", "visitors": 2, "events": 4},
        {"value": "signup", "visitors": 1, "events": 1},
    ]
    assert await breakdown(client, "props:plan") == [{"value": "pro", "visitors": 1, "events": 1}]
    assert await breakdown(client, "props:none") == []


async def test_timeseries_has_visitors_and_visits(
    client: httpx.AsyncClient, scenario: None
) -> None:
    series = await get(client, "/stats/timeseries", interval="day")
    assert [(b["visitors"], b["visits"]) for b in series] == [(2, 3)]
    hours = await get(client, "/stats/timeseries")
    found = {b["t"][11:13]: (b["visitors"], b["visits"]) for b in hours if b["visitors"]}
    assert found == {"12": (1, 1), "13": (1, 1), "15": (1, 1)}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"property": "nope"}, "property must be one of"),
        ({}, "property must be one of"),
        ({"property": "props:"}, "property must be one of"),
        ({"property": "props:" + "k" * 301}, "property must be one of"),
        ({"property": "page", "limit": "1001"}, "limit must be an integer between 1 and 1000"),
        ({"property": "page", "date": "2026-13-01"}, "date must be a date as YYYY-MM-DD"),
    ],
)
async def test_breakdown_refuses_bad_parameters(
    client: httpx.AsyncClient, schema: Settings, params: dict[str, str], message: str
) -> None:
    response = await client.get("/stats/breakdown", params={"site_id": SITE, **params})
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_data_is_zeros(client: httpx.AsyncClient, schema: Settings) -> None:
    body = await get(client, "/stats/aggregate", date="2020-01-01")
    assert body == {
        "site_id": SITE,
        "from": "2020-01-01",
        "to": "2020-01-01",
        "visitors": 0,
        "visits": 0,
        "pageviews": 0,
        "views_per_visit": 0,
        "bounce_rate": 0,
        "visit_duration": 0,
        "bots": 0,
    }
