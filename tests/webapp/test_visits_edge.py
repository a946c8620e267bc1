"""Enrichment and sessionization at the web edge: what POST /event queues for a visitor.

Over the real ASGI app and real Redis: each message is read back with the worker's own
``decode_wire``, so the visit the enqueue script appends is checked in the format the
worker stores. The in-process client's peer is 127.0.0.1, which FORWARDED_ALLOW_IPS
trusts by default, so ``X-Forwarded-For`` names the visitor's address.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from db.event import Event, decode_wire
from db.settings import Settings
from tests.conftest import app_client
from webapp.enrich import country_of

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CHROME_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
)
ADDRESS = "81.2.69.160"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def post(
    client: httpx.AsyncClient,
    ua: str = FIREFOX,
    address: str = ADDRESS,
    **fields: Any,
) -> httpx.Response:
    body = {"site_id": "site-v", "event_type": "pageview", **fields}
    headers = {"User-Agent": ua, "X-Forwarded-For": address}
    response = await client.post("/event", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response


async def stored(redis: Redis, settings: Settings) -> list[tuple[bytes, Event]]:
    raw = await redis.lrange(settings.queue_name, 0, -1)
    return [(item, decode_wire(item)) for item in reversed(raw)]


async def test_one_visitor_one_visit_in_accepted_order(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, path="/a", timestamp=at(0))
    await post(client, event_type="signup", path="/a", timestamp=at(5))
    await post(client, path="/b", timestamp=at(29))
    events = [e for _, e in await stored(redis_client, schema)]
    visits = [e.visit for e in events]
    assert all(v is not None for v in visits)
    first, second, third = visits
    assert first is not None and second is not None and third is not None
    assert first.visitor == second.visitor == third.visitor
    assert first.id == second.id == third.id
    assert [v.seq for v in visits if v] == [1, 2, 3]
    assert first.before is None
    assert second.before == first.after
    assert third.before == second.after
    t0 = int(T0.timestamp()) * 1_000_000
    assert third.after.first == t0 and third.after.last == t0 + 29 * 60 * 1_000_000
    # Entry and exit are pageviews only: the signup in between changes neither.
    assert (second.after.entry, second.after.exit) == ("/a", "/a")
    assert (third.after.entry, third.after.exit) == ("/a", "/b")
    assert first.start == second.start == t0


async def test_a_pause_over_thirty_minutes_opens_a_new_visit(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, path="/a", timestamp=at(0))
    await post(client, path="/a", timestamp=at(30))  # exactly 30 min: same visit
    await post(client, path="/a", timestamp=at(60.5))
    visits = [e.visit for _, e in await stored(redis_client, schema)]
    assert visits[0] and visits[1] and visits[2]
    assert visits[0].id == visits[1].id != visits[2].id
    assert visits[0].visitor == visits[2].visitor
    assert visits[2].seq == 1 and visits[2].before is None


async def test_visitors_differ_by_address_user_agent_and_site(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, path="/")
    await post(client, ua=CHROME_PHONE, path="/")
    await post(client, address="81.2.69.161", path="/")
    await client.post(
        "/event",
        json={"site_id": "other", "event_type": "pageview"},
        headers={"User-Agent": FIREFOX, "X-Forwarded-For": ADDRESS},
    )
    visitors = {e.visit.visitor for _, e in await stored(redis_client, schema) if e.visit}
    assert len(visitors) == 4


async def test_a_user_id_is_the_visitor(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, user_id="u-1", path="/")
    await post(client, ua=CHROME_PHONE, address="81.2.69.200", user_id="u-1", path="/x")
    (_, one), (_, two) = await stored(redis_client, schema)
    assert one.visit and two.visit
    assert one.visit.visitor == two.visit.visitor == hashlib.md5(b"u-1").hexdigest()
    assert one.visit.id == two.visit.id


async def test_the_salt_is_daily_shared_and_expires(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, path="/")
    today = datetime.now(timezone.utc).date().isoformat()
    key = "{" + schema.queue_name + "}:salt:" + today
    salt = await redis_client.get(key)
    assert salt is not None and len(salt) == 32
    assert 47 * 3600 < await redis_client.ttl(key) <= 48 * 3600
    # A second process (a new app) uses the same salt: the same visitor, the same visit.
    async with app_client(schema) as other:
        await post(other, path="/b")
    (_, one), (_, two) = await stored(redis_client, schema)
    assert one.visit and two.visit and one.visit.id == two.visit.id


async def test_yesterdays_salt_continues_a_visit_across_midnight(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    from webapp.enrich import visitor_hash

    now = datetime.now(timezone.utc)
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    salt = b"y" * 32
    await redis_client.set("{" + schema.queue_name + "}:salt:" + yesterday, salt)
    earlier = visitor_hash(salt, "site-v", ADDRESS, FIREFOX)
    await post(client, path="/late", timestamp=(now - timedelta(minutes=10)).isoformat())
    ((_, first),) = await stored(redis_client, schema)
    # The first event opened a visit under today's id: no state under yesterday's.
    assert first.visit and first.visit.visitor != earlier
    # Now give the visitor a visit under yesterday's id and see the next event continue it.
    await redis_client.delete(schema.queue_name)
    state = "{" + schema.queue_name + "}:visit:"
    for key in [k async for k in redis_client.scan_iter(match=state + "*")]:
        await redis_client.delete(key)
    digest = hashlib.sha256(f"site-v\0{earlier}".encode()).hexdigest()[:40]
    t = int((now - timedelta(minutes=5)).timestamp() * 1_000_000)
    await redis_client.hset(
        state + digest,
        mapping={
            "id": "77",
            "n": "1",
            "first": t,
            "last": t,
            "start": t,
            "dims": "{}",
            "visitor": earlier,
            "entry": "p/late",
            "exit": "p/late",
        },
    )
    await post(client, path="/after-midnight")
    ((_, second),) = await stored(redis_client, schema)
    assert second.visit and second.visit.id == 77 and second.visit.seq == 2
    assert second.visit.visitor == earlier
    assert second.visit.after.exit == "/after-midnight"


async def test_url_referrer_and_screen_width_become_dimensions(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(
        client,
        ua=CHROME_PHONE,
        url="https://shop.example/p/shoes?utm_source=news&utm_medium=email&utm_campaign=spring&q=secret",
        referrer="https://www.google.com/search?q=secret",
        screen_width=390,
    )
    [(raw, event)] = await stored(redis_client, schema)
    assert event.path == "/p/shoes"
    assert event.visit is not None
    dims = dict(event.visit.dims)
    assert dims["source"] == "news"  # utm_source wins over the referrer
    assert dims["referrer"] == "google.com/search"
    assert (dims["utm_medium"], dims["utm_campaign"]) == ("email", "spring")
    assert dims["device"] == "Mobile"
    assert (dims["browser"], dims["os"]) == ("Chrome Mobile", "Android")
    assert dims.get("country") == country_of(ADDRESS)
    # Neither the address, the User-Agent, the raw URL nor its query string is queued.
    for secret in (ADDRESS.encode(), b"Pixel 8", b"secret", b"shop.example"):
        assert secret not in raw
    # The screen width is queued only as its device class: no key or value holds the number
    # (searched as JSON, since the digits "390" may well occur inside a timestamp).
    assert 390 not in leaves(json.loads(raw)) and b"screen_width" not in raw


def leaves(value: Any) -> list[Any]:
    """Every key and scalar inside a decoded JSON document."""
    if isinstance(value, dict):
        return [*value, *(leaf for item in value.values() for leaf in leaves(item))]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaves(item)]
    return [value]


async def test_a_referrer_from_the_site_itself_is_direct(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, url="https://shop.example/b", referrer="https://shop.example/a")
    [(_, event)] = await stored(redis_client, schema)
    assert event.visit and event.visit.dims["source"] == "Direct / None"
    assert "referrer" not in event.visit.dims


async def test_tracker_events_from_bots_are_queued_as_bots_without_a_visit(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, ua=HEADLESS, url="https://shop.example/")
    # The same agent without url (a server-side sender) is never judged a bot, nor is curl.
    await post(client, ua=HEADLESS, path="/api")
    await post(client, ua="curl/8.5.0", path="/api")
    (_, bot), (_, server), (_, curl) = await stored(redis_client, schema)
    assert bot.bot and bot.visit is None and bot.path == "/"
    assert not server.bot and server.visit is not None
    assert not curl.bot and curl.visit is not None


async def test_a_duplicate_or_refused_event_does_not_advance_the_visit(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    await post(client, path="/a", event_id="e-1", timestamp=at(0))
    await post(client, path="/b", event_id="e-1", timestamp=at(1))  # duplicate: not queued
    await post(client, path="/c", event_id="e-2", timestamp=at(2))
    _, (_, two) = await stored(redis_client, schema)
    assert two.visit and two.visit.seq == 2 and two.visit.after.exit == "/c"
    assert two.visit.before and two.visit.before.exit == "/a"
