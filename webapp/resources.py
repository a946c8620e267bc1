"""The process-wide connections of the web app, opened in the ASGI lifespan.

They are bound to the serving event loop, so they are created at startup on that
loop (never at import, never per request) and closed at shutdown. With
``hypercorn --workers N`` each process opens its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, current_app
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from asyncworker.protocol import ENQUEUE_LUA, EVENT_ID_TTL_S, RECEIVED_BUCKET_TTL_S, QueueKeys
from db.engine import create_engine
from db.settings import Settings

EXTENSION = "analytics"


@dataclass
class Resources:
    settings: Settings
    redis: Redis
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: QueueKeys
    enqueue_script: AsyncScript


async def open_resources(app: Flask) -> Resources:
    settings: Settings = app.config["SETTINGS"]
    # Short timeouts: with Redis away, POST /event must answer 503 quickly rather than hang.
    # A burst above the pool's size waits briefly for a free connection instead of
    # failing at once; Redis away still fails fast through the socket timeouts.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=256,
        timeout=2,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
    )
    redis = Redis.from_pool(pool)
    engine = create_engine(settings)
    res = Resources(
        settings=settings,
        redis=redis,
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        keys=QueueKeys(settings.queue_name),
        enqueue_script=redis.register_script(ENQUEUE_LUA),
    )
    app.extensions[EXTENSION] = res
    return res


async def close_resources(app: Flask) -> None:
    res: Resources | None = app.extensions.pop(EXTENSION, None)
    if res is not None:
        await res.redis.aclose()
        await res.engine.dispose()


def resources() -> Resources:
    res: Resources | None = current_app.extensions.get(EXTENSION)
    if res is None:
        raise RuntimeError("the app's connections are opened by the ASGI lifespan (webapp.asgi)")
    return res


async def enqueue(res: Resources, payload: bytes, site_id: str, dedupe_key: str | None) -> int:
    """Run the enqueue script (EVALSHA): 1 queued, 0 duplicate event_id, -1 queue full."""
    keys = res.keys
    args = (
        payload,
        res.settings.max_queue_length,
        site_id,
        "1" if dedupe_key else "0",
        EVENT_ID_TTL_S,
        RECEIVED_BUCKET_TTL_S,
    )
    # Without an event_id the script ignores its dedupe key; any name in the slot will do.
    key_names = [keys.queue, dedupe_key or keys.workers, keys.received(int(time.time() // 60))]
    return int(await res.enqueue_script(keys=key_names, args=args))
