"""POST /events: a batch of events, each validated on its own, queued per shard in one step.

Over the real ASGI app and real Redis; messages are read back with the worker's own
``decode_wire``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from db.event import Event, decode_wire
from db.settings import Settings
from tests.conftest import app_client

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36"


def ev(**fields: Any) -> dict[str, Any]:
    return {"site_id": "batch", "event_type": "pageview", **fields}


async def queued(redis: Redis, settings: Settings) -> list[Event]:
    return [decode_wire(m) for m in reversed(await redis.lrange(settings.queue_name, 0, -1))]


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers.setdefault("content-type", "application/json")
    return await client.post("/events", content=content, headers=headers)


async def test_valid_items_are_queued_and_invalid_ones_reported(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    body = [
        ev(path="/a", user_id="u1", event_id="e-1"),
        {"event_type": "pageview"},
        ev(path="/b", user_id="u1", event_id="e-1"),  # a duplicate inside the batch
        "not an object",
        ev(path="/c", user_id="u2", props={"plan": "pro"}),
        ev(path="x" * 501),
    ]
    response = await post(client, body)
    assert response.status_code == 202, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == {
        "accepted": 2,
        "duplicates": 1,
        "rejected": [
            {"index": 1, "error": "site_id required"},
            {"index": 3, "error": "body must be a JSON object"},
            {"index": 5, "error": "path must be at most 500 characters"},
        ],
    }
    events = await queued(redis_client, schema)
    assert [(e.path, e.user_id) for e in events] == [("/a", "u1"), ("/c", "u2")]
    assert all(e.visit is not None for e in events)
    assert events[1].props == {"plan": "pro"}
    # The same event_id again, in a later batch: a duplicate, not queued.
    again = await post(client, [ev(path="/a", user_id="u1", event_id="e-1")])
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert len(await queued(redis_client, schema)) == 2


async def test_ndjson_lines_are_items(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    lines = [orjson.dumps(ev(path="/1")), b"{broken", b"", orjson.dumps(ev(path="/2"))]
    response = await post(
        client, b"\n".join(lines) + b"\n", **{"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [{"index": 1, "error": "not valid JSON"}],
    }
    assert [e.path for e in await queued(redis_client, schema)] == ["/1", "/2"]


async def test_one_visitors_batch_is_one_visit_in_order(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    body = [ev(path=f"/{n}", timestamp=f"2026-01-01T10:0{n}:00Z") for n in range(5)]
    response = await post(client, body, **{"user-agent": FIREFOX})
    assert response.json()["accepted"] == 5
    visits = [e.visit for e in await queued(redis_client, schema)]
    assert [v.seq for v in visits if v] == [1, 2, 3, 4, 5]
    assert len({v.id for v in visits if v}) == 1


async def test_tracker_items_from_a_bot_are_bots(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    response = await post(
        client, [ev(url="https://s.example/"), ev(path="/api")], **{"user-agent": HEADLESS}
    )
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    bot, server = await queued(redis_client, schema)
    assert bot.bot and bot.visit is None
    assert not server.bot and server.visit is not None


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "message"),
    [
        (b"{}", "application/json", 400, "body must be a JSON array of events, or NDJSON"),
        (b"", "application/json", 400, "body must be a JSON array of events, or NDJSON"),
        (b"[1,", "application/json", 400, "body is not valid JSON"),
        (orjson.dumps([ev()] * 1001), "application/json", 400, "a batch holds at most 1000 events"),
        (b"[]", "application/xml", 415, None),
    ],
)
async def test_bodies_that_are_not_batches_are_refused(
    client: httpx.AsyncClient,
    redis_client: Redis,
    schema: Settings,
    raw: bytes,
    content_type: str,
    status: int,
    message: str | None,
) -> None:
    response = await post(client, raw, **{"content-type": content_type})
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json() == {"error": message}
    assert await redis_client.llen(schema.queue_name) == 0


async def test_an_empty_batch_accepts_nothing(client: httpx.AsyncClient, schema: Settings) -> None:
    response = await post(client, [])
    assert (response.status_code, response.json()) == (
        202,
        {"accepted": 0, "duplicates": 0, "rejected": []},
    )


async def test_the_body_limit_is_one_mebibyte(
    client: httpx.AsyncClient, redis_client: Redis, schema: Settings
) -> None:
    # 100 KiB: over /event's limit, within /events'.
    body = [ev(path="/" + "p" * 400, props={"k": "v" * 600}) for _ in range(100)]
    raw = orjson.dumps(body)
    assert 64 * 1024 < len(raw) < 1024 * 1024
    assert (await post(client, raw)).json()["accepted"] == 100
    single = await client.post("/event", content=raw, headers={"content-type": "application/json"})
    assert single.status_code == 413
    huge = orjson.dumps([ev(props={"k": "v" * 2000})] * 600)
    assert len(huge) > 1024 * 1024
    response = await post(client, huge)
    assert response.status_code == 413
    assert response.json() == {"error": "body too large (at most 1048576 bytes)"}


async def test_a_full_queue_takes_none_of_the_batch(
    settings_factory: Callable[..., Settings], sqlite_url: str, redis_client: Redis
) -> None:
    settings = settings_factory(sqlite_url, MAX_QUEUE_LENGTH="3")
    async with app_client(settings) as client:
        response = await post(client, [ev(path=f"/{n}") for n in range(4)])
        assert response.status_code == 503
        assert response.headers["retry-after"] == "10"
        assert await redis_client.llen(settings.queue_name) == 0
        assert (await post(client, [ev(path=f"/{n}") for n in range(3)])).status_code == 202


async def test_preflight(client: httpx.AsyncClient, schema: Settings) -> None:
    response = await client.options(
        "/events",
        headers={"Origin": "https://s.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
