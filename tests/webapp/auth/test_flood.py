"""A flood of made-up site ids against the size of every page and API that lists sites.

The issue: 20 unauthenticated ``POST /events`` of 1,000 distinct site ids made
``/settings/sites`` 32 MB, ``/settings/keys`` 10 MB and an admin's ``/sites`` 4.9 MB.
Here the names are the costliest a sender can make (255 characters: four-byte ones, which
a URL writes in 12 bytes, and characters that HTML and JSON escape), queued through the
real ingestion and stored by the worker's batch writer. Every page stays under 200 KB,
and search and the next pages find any site.
"""

from __future__ import annotations

import re
import uuid

import httpx
from redis.asyncio import Redis

from asyncworker.writer import write_batch
from db.engine import create_engine
from db.event import decode_wire
from tests.webapp.auth.conftest import World, sign_in

PAGE_BUDGET = 200 * 1024
REQUESTS, PER_REQUEST = 20, 1000


def costly_name(n: int) -> str:
    """255 characters: a number to tell them apart, then the dearest characters."""
    head = f"{n:05d}"
    return head + ("😀" * 150 + "\"<>&'\x01" * 17)[: 255 - len(head)]


async def _flood(http: httpx.AsyncClient, world: World) -> None:
    for r in range(REQUESTS):
        batch = [
            {"site_id": costly_name(r * PER_REQUEST + i), "event_type": "pageview"}
            for i in range(PER_REQUEST)
        ]
        answer = await http.post("/events", json=batch)  # no credential: ingestion is open
        assert answer.status_code == 202 and answer.json()["accepted"] == PER_REQUEST
    settings = world.settings
    redis = Redis.from_url(settings.redis_url)
    engine = create_engine(settings)
    try:
        raw = await redis.lrange(settings.queue_name, 0, -1)
        await redis.delete(settings.queue_name)
        events = [decode_wire(m) for m in raw[::-1]]
        for start in range(0, len(events), 5000):
            assert await write_batch(engine, uuid.uuid4().hex, events[start : start + 5000])
    finally:
        await engine.dispose()
        await redis.aclose()


async def test_a_flood_of_site_ids_keeps_every_list_small(
    web: httpx.AsyncClient, world: World
) -> None:
    await _flood(web, world)
    assert (await sign_in(web, "root@example.com")).status_code == 303  # the admin
    sizes: dict[str, int] = {}
    for path in ("/settings/sites", "/settings/sites?page=400", "/settings/keys", "/sites"):
        answer = await web.get(path)
        assert answer.status_code == 200, path
        sizes[path] = len(answer.content)
    print(f"\npage sizes after {REQUESTS * PER_REQUEST} made-up site ids: {sizes}")
    assert all(size <= PAGE_BUDGET for size in sizes.values()), sizes
    assert sizes["/settings/sites"] > 50 * 1024  # a full page of the costly names

    # Every site is still found: by search, and page after page of /sites.
    wanted = costly_name(12345)
    found = await web.get("/settings/sites", params={"q": wanted[:5]})
    assert found.status_code == 200 and len(re.findall('class="site-link"', found.text)) == 1
    api = await web.get("/sites", params={"q": "12345"})
    assert [row["site_id"] for row in api.json()["sites"]] == [wanted]
    listed, url = 0, "/sites?limit=100"
    while url and listed < 1000:
        page = await web.get(url)
        listed += len(page.json()["sites"])
        link = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers.get("Link", ""))
        url = link.group(1) if link else ""
    assert listed == 1000 and url  # ten pages in, more follow

    # A user who reads one site sees that one, on both pages.
    web.cookies.clear()
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    page = await web.get("/settings/sites")
    assert re.findall(r'class="site-link">([^<]+)<', page.text) == ["site-a"]
    keys = await web.get("/settings/keys")
    assert re.findall(r'name="sites" value="([^"]+)"', keys.text) == ["site-a"]
