"""A non-admin cannot register a name whose events are someone's: stored, or still on their
way (queued, or in flight in a worker's batch). The issue: the check read only the
aggregates, so a name whose events were queued could be claimed, and its events read.
"""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from asyncworker.consumer import BatchProcessor
from asyncworker.queue import Queue
from asyncworker.worker import Worker
from db.engine import create_engine
from tests.webapp.auth.conftest import World, csrf_token, sign_in

REFUSED = "Events were already received for this name"


async def _register(web: httpx.AsyncClient, site: str) -> httpx.Response:
    token = await csrf_token(web, "/settings/sites")
    return await web.post("/settings/sites", data={"site_id": site, "csrf_token": token})


async def test_a_site_with_events_on_their_way_cannot_be_claimed(
    web: httpx.AsyncClient, world: World
) -> None:
    settings = world.settings
    sent = await web.post("/event", json={"site_id": "queued-site", "event_type": "pageview"})
    assert sent.status_code == 202
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    queued = await _register(web, "queued-site")
    assert queued.status_code == 400 and REFUSED in queued.text

    worker = Worker(
        settings, Queue(settings, Redis.from_url(settings.redis_url)), create_engine(settings)
    )
    ctx, queue = worker.ctx, worker.ctx.queue
    try:
        # In flight: taken into a consumer's batch, not stored yet.
        inflight = queue.keys.inflight(worker.consumer_ids[0])
        marker = (await ctx.claim(inflight))[-1]
        raws = await queue.move(inflight, 10, ctx.worker_id, ctx.registration)
        assert len(raws) == 1 and await queue.length() == 0
        in_flight = await _register(web, "queued-site")
        assert in_flight.status_code == 400 and REFUSED in in_flight.text
        # Stored: its pending count is gone, the stored events refuse it now.
        await BatchProcessor(ctx, inflight).process(marker, raws)
        assert await queue.pending_events("queued-site") == 0
        assert await queue.redis.hlen(queue.keys.pending) == 0
        stored = await _register(web, "queued-site")
        assert stored.status_code == 400 and REFUSED in stored.text
    finally:
        await queue.close()
        await ctx.engine.dispose()
    # A name nobody sent events for is free.
    fresh = await _register(web, "fresh-site")
    assert fresh.status_code == 200 and "Site fresh-site added." in fresh.text
    # An admin may hand a name's events to an owner.
    web.cookies.clear()
    assert (await sign_in(web, "root@example.com")).status_code == 303
    assert (await _register(web, "queued-site")).status_code == 200
