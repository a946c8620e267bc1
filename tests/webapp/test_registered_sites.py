"""REGISTERED_SITES_ONLY: events of a site nobody registered are answered 202 with
``X-Analytics-Dropped``, counted as ``unregistered_site`` and never queued (as Plausible
answers ``x-plausible-dropped: 1``); a new registration is taken in within seconds.
Off (the default), every site's events are queued as the README's examples expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker

from db import accounts
from db.engine import create_engine
from db.registry import REFRESH_S
from db.schema import init_db
from db.settings import Settings
from tests.conftest import app_client
from tests.webapp.test_metrics import samples
from webapp.auth import admin

DROPPED = "X-Analytics-Dropped"


def event(site: str) -> dict[str, str]:
    return {"site_id": site, "event_type": "pageview", "path": "/"}


async def _register(settings: Settings, site: str) -> None:
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False).begin() as s:
            owner = await accounts.user_by_email(s, "o@example.com")
            if owner is None:
                owner = await admin.add_user(s, "o@example.com", None, False)
            await accounts.register_site(s, site, owner)
    finally:
        await engine.dispose()


async def _dropped_total(http: httpx.AsyncClient) -> float:
    found = samples((await http.get("/metrics")).text)
    return found[("analytics_events_rejected_total", (("reason", "unregistered_site"),))]


async def test_unregistered_sites_are_dropped_and_registered_ones_kept(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url, REGISTERED_SITES_ONLY="true")
    engine = create_engine(settings)
    await init_db(engine)
    await engine.dispose()
    await _register(settings, "mine")
    redis = Redis.from_url(settings.redis_url)
    try:
        async with app_client(settings) as http:
            before = await _dropped_total(http)
            kept = await http.post("/event", json=event("mine"))
            assert kept.status_code == 202 and DROPPED not in kept.headers
            assert await redis.llen(settings.queue_name) == 1
            for body in (event("flood-1"), event("flood-2")):
                dropped = await http.post("/event", json=body)  # the bridge's fast path
                assert dropped.status_code == 202 and dropped.headers[DROPPED] == "1"
                assert dropped.json() == {"status": "accepted"}  # the same body, as Plausible
            batch = [event("mine"), *(event(f"flood-{n}") for n in range(998)), {"x": 1}]
            answer = await http.post("/events", json=batch)
            assert answer.status_code == 202 and answer.headers[DROPPED] == "998"
            assert answer.json()["accepted"] == 1 and len(answer.json()["rejected"]) == 1
            assert await redis.llen(settings.queue_name) == 2
            assert await _dropped_total(http) - before == 1000
            # A site registered now is taken in within a few seconds, no restart.
            await _register(settings, "new-site")

            async def accepted() -> bool:
                answer = await http.post("/event", json=event("new-site"))
                return DROPPED not in answer.headers

            for _ in range(int(3 * REFRESH_S / 0.2)):
                if await accepted():
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("a new registration was not taken in")
    finally:
        await redis.aclose()


async def test_off_by_default_every_site_is_queued(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url)
    assert not settings.registered_sites_only
    redis = Redis.from_url(settings.redis_url)
    try:
        async with app_client(settings) as http:
            answer = await http.post("/event", json=event("example-site"))
            assert answer.status_code == 202 and DROPPED not in answer.headers
            assert await redis.llen(settings.queue_name) == 1
    finally:
        await redis.aclose()


async def test_no_registry_yet_is_a_503_never_a_drop(
    settings_factory: Callable[..., Settings],
) -> None:
    """The database away at start: nothing is known of the sites, so nothing is dropped
    on a guess; senders are asked to retry."""
    settings = settings_factory("sqlite:////nonexistent/dir/a.db", REGISTERED_SITES_ONLY="true")
    async with app_client(settings) as http:
        answer = await http.post("/event", json=event("mine"))
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
        assert answer.json() == {"error": "registered sites not loaded yet, retry later"}
