"""The process-wide connections of the web app, opened in the ASGI lifespan.

They are bound to the serving event loop, so they are created at startup on that
loop (never at import, never per request) and closed at shutdown. With
``hypercorn --workers N`` each process opens its own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from asyncworker.queue import Queue
from db.engine import create_engine
from db.registry import SiteRegistry
from db.settings import Settings
from webapp import enrich
from webapp.enrich import GeoDatabase

EXTENSION = "analytics"


@dataclass
class Resources:
    settings: Settings
    queue: Queue
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Region and city names (GEOIP_DB); None when not configured.
    geo: GeoDatabase | None = None
    # The registered sites, refreshed in the background (REGISTERED_SITES_ONLY only).
    registry: SiteRegistry | None = None


async def open_resources(app: Flask) -> Resources:
    settings: Settings = app.config["SETTINGS"]
    settings.require_secret_key()  # signs sessions, hashes credentials: no start without it
    # The web edge's client (Queue.for_web): short timeouts, so with Redis away
    # POST /event answers 503 quickly rather than hang.
    # Parsing rules load now (about half a second), not on the first event.
    enrich.load_rules()
    geo = GeoDatabase(settings.geoip_db) if settings.geoip_db is not None else None
    engine = create_engine(settings)
    res = Resources(
        settings=settings,
        queue=Queue.for_web(settings),
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        geo=geo,
    )
    # A cluster's topology, learnt before requests run concurrently; Redis away at
    # start is no reason not to serve (POST /event answers 503 until it is back).
    with contextlib.suppress(RedisError, OSError):
        await res.queue.warm_up()
    if settings.registered_sites_only:
        res.registry = SiteRegistry(engine)
        await res.registry.start()
    app.extensions[EXTENSION] = res
    return res


async def close_resources(app: Flask) -> None:
    res: Resources | None = app.extensions.pop(EXTENSION, None)
    if res is not None:
        if res.registry is not None:
            await res.registry.close()
        await res.queue.close()
        await res.engine.dispose()
        if res.geo is not None:
            res.geo.close()


def resources() -> Resources:
    res: Resources | None = current_app.extensions.get(EXTENSION)
    if res is None:
        raise RuntimeError("the app's connections are opened by the ASGI lifespan (webapp.asgi)")
    return res
