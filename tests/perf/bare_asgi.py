"""The ceiling ``POST /event`` is measured against: a bare ASGI callable that reads the
body, parses it as JSON and LPUSHes it to Redis, answering 202. No validation, no
enrichment, no framework. Served by Hypercorn on uvloop like ``analytics web``:

    hypercorn tests.perf.bare_asgi:app --worker-class uvloop --workers 1 --bind 127.0.0.1:PORT
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from redis.asyncio import Redis

QUEUE = os.environ.get("BARE_QUEUE", "bench_bare")
_redis: Redis | None = None
_ACCEPTED = orjson.dumps({"status": "accepted"})
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_ACCEPTED)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _redis
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _redis is not None:
                    await _redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    orjson.loads(body)
    assert _redis is not None
    await _redis.lpush(QUEUE, body)
    await send({"type": "http.response.start", "status": 202, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ACCEPTED})
