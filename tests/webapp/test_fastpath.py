"""The bridge's fast path for POST /event answers exactly as the Flask view does.

Each request is sent to the real app twice: once through the bridge with the fast path
(as served) and once through a bridge without it (Flask's view, hooks and error
handlers). Status, headers and body must be identical, and so must what reaches Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis

from db.event import decode_wire
from db.settings import Settings
from webapp import create_app
from webapp.asgi import make_asgi
from webapp.bridge import AsgiBridge
from webapp.resources import close_resources, open_resources

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}
JSON = {"Content-Type": "application/json", **UA}

CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("accepted", b'{"site_id": "f", "event_type": "pageview", "path": "/a"}', JSON),
    ("text/plain", b'{"site_id": "f", "event_type": "pageview"}', {"Content-Type": "text/plain"}),
    ("no type", b'{"site_id": "f", "event_type": "pageview"}', {}),
    (
        "charset",
        b'{"site_id": "f", "event_type": "x"}',
        {"Content-Type": "Application/JSON; charset=utf-8"},
    ),
    ("+json", b'{"site_id": "f", "event_type": "x"}', {"Content-Type": "application/vnd.x+json"}),
    ("not json", b"{", JSON),
    ("empty", b"", JSON),
    ("not an object", b"[]", JSON),
    ("missing field", b'{"site_id": "f"}', JSON),
    ("wrong type", b'{"site_id": 1, "event_type": "x"}', JSON),
    ("bad props", b'{"site_id": "f", "event_type": "x", "props": []}', JSON),
    ("415", b"{}", {"Content-Type": "application/xml"}),
    (
        "forwarded, tracker",
        b'{"site_id": "f", "event_type": "pageview", "url": "https://f.example/p?utm_source=n"}',
        {**JSON, "X-Forwarded-For": "81.2.69.160, 10.0.0.1"},
    ),
    (
        "bot",
        b'{"site_id": "f", "event_type": "pageview", "url": "https://f.example/"}',
        {"Content-Type": "application/json", "User-Agent": "HeadlessChrome/120"},
    ),
]


@asynccontextmanager
async def both(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    flask_app = create_app({"SETTINGS": settings, "TESTING": True})
    fast = make_asgi(flask_app)
    slow = AsgiBridge(flask_app)
    assert fast.fast_path is not None and slow.fast_path is None
    await open_resources(flask_app)
    try:
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=fast),
                base_url="http://t",  # type: ignore[arg-type]
            ) as a,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=slow),
                base_url="http://t",  # type: ignore[arg-type]
            ) as b,
        ):
            yield a, b
    finally:
        await close_resources(flask_app)


@SQLITE_ONLY
@pytest.mark.parametrize(("body", "headers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_both_paths_answer_alike(
    schema: Settings, redis_client: Redis, body: bytes, headers: dict[str, str]
) -> None:
    async with both(schema) as (fast, slow):
        one = await fast.post("/event", content=body, headers=headers)
        two = await slow.post("/event", content=body, headers=headers)
    assert (one.status_code, dict(one.headers), one.content) == (
        two.status_code,
        dict(two.headers),
        two.content,
    )
    queued = [decode_wire(m) for m in await redis_client.lrange(schema.queue_name, 0, -1)]
    if one.status_code == 202:
        a, b = queued
        assert (a.path, a.bot, a.visit and dict(a.visit.dims)) == (
            b.path,
            b.bot,
            b.visit and dict(b.visit.dims),
        )
    else:
        assert queued == []


async def test_both_paths_answer_a_full_queue_alike(
    settings_factory: Callable[..., Settings], sqlite_url: str, redis_client: Redis
) -> None:
    settings = settings_factory(sqlite_url, MAX_QUEUE_LENGTH="1")
    body = b'{"site_id": "f", "event_type": "x"}'
    async with both(settings) as (fast, slow):
        assert (await fast.post("/event", content=body, headers=JSON)).status_code == 202
        one = await fast.post("/event", content=body, headers=JSON)
        two = await slow.post("/event", content=body, headers=JSON)
    assert one.status_code == 503 and one.headers["retry-after"] == "10"
    assert (one.status_code, dict(one.headers), one.content) == (
        two.status_code,
        dict(two.headers),
        two.content,
    )


async def test_both_paths_answer_redis_away_alike(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url, REDIS_URL="redis://127.0.0.1:1/0")
    body = b'{"site_id": "f", "event_type": "x"}'
    async with both(settings) as (fast, slow):
        one = await fast.post("/event", content=body, headers=JSON)
        two = await slow.post("/event", content=body, headers=JSON)
    assert one.status_code == 503 and one.json() == {"error": "queue unavailable, retry later"}
    assert (one.status_code, dict(one.headers), one.content) == (
        two.status_code,
        dict(two.headers),
        two.content,
    )
