"""``GET /metrics`` in process: who may scrape it, and the figures moving with the traffic.

The counters are the process's own, so the tests compare values before and after.
Real Redis (the queue's figures are read from it) and SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
import redis as redis_sync
from prometheus_client.parser import text_string_to_metric_families

from asyncworker.keys import QueueKeys
from db.engine import create_engine
from db.schema import init_db
from db.settings import Settings
from tests.conftest import app_client, free_port
from webapp.bridge import MAX_BODY_BYTES

TOKEN = "metrics-token-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@contextlib.asynccontextmanager
async def web(settings: Settings, peer: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(settings)
    await init_db(engine)
    await engine.dispose()
    async with app_client(settings, peer) as http:
        yield http


@pytest.fixture
def build(settings_factory: Callable[..., Settings], sqlite_url: str) -> Callable[..., Settings]:
    return lambda **env: settings_factory(sqlite_url, **env)


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_the_default_allows_loopback_only(build: Callable[..., Settings]) -> None:
    settings = build()
    async with web(settings) as http:
        await scrape(http)
    async with web(settings, peer="203.0.113.7") as http:
        response = await http.get("/metrics")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()


async def test_allowed_networks_and_the_token(build: Callable[..., Settings]) -> None:
    settings = build(METRICS_ALLOW_IPS="10.0.0.0/8, 192.0.2.1", METRICS_TOKEN=TOKEN)
    async with web(settings, peer="10.1.2.3") as http:
        await scrape(http)
    async with web(settings, peer="192.0.2.1") as http:
        await scrape(http)
    async with web(settings, peer="127.0.0.1") as http:  # no longer in the list
        for value in (None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN):
            headers = {} if value is None else {"Authorization": value}
            response = await http.get("/metrics", headers=headers)
            assert response.status_code == 403, value
            assert set(response.json()) == {"error"}
        await scrape(http, Authorization=f"Bearer {TOKEN}")


async def test_a_forwarded_client_is_judged_not_its_proxy(build: Callable[..., Settings]) -> None:
    """Behind a trusted proxy on loopback, the scraper is the client the proxy names."""
    async with web(build(), peer="127.0.0.1") as http:
        response = await http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert response.status_code == 403
        await scrape(http, **{"X-Forwarded-For": "127.0.0.1"})


def event(**extra: Any) -> dict[str, Any]:
    return {"site_id": "metrics-site", "event_type": "pageview", **extra}


async def test_counters_and_queue_figures_move(build: Callable[..., Settings]) -> None:
    settings = build(MAX_QUEUE_LENGTH="3")
    keys = QueueKeys(settings.queue_name)
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    async with web(settings) as http:
        before = await scrape(http)
        assert before[("analytics_queue_length", (("shard", "0"),))] == 0
        assert before[("analytics_drain_lag_seconds", ())] == 0
        posts = [
            event(timestamp=an_hour_ago, event_id="e1"),  # accepted (the oldest)
            event(event_id="e1"),  # duplicate
            event(),  # accepted
            event(site_id=""),  # invalid
            event(path="x" * MAX_BODY_BYTES),  # too large
            event(),  # accepted: the queue now holds 3
            event(),  # queue full
        ]
        codes = [(await http.post("/event", json=body)).status_code for body in posts]
        assert codes == [202, 202, 202, 400, 413, 202, 503]
        with redis_sync.Redis.from_url(settings.redis_url) as r:
            r.lpush(keys.dead, b"{}")
            r.hset(keys.workers, "w1", orjson.dumps({"consumers": ["w1:0", "w1:1"]}))
            r.rpush(keys.inflight("w1:0"), b"an event", b"#batch:1")  # a batch under way
            r.rpush(keys.inflight("w1:1"), b"#batch:2")  # a consumer waiting
        after = await scrape(http)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert moved("analytics_events_accepted_total") == 3
    assert moved("analytics_events_duplicate_total") == 1
    assert moved("analytics_events_rejected_total", reason="invalid") == 1
    assert moved("analytics_events_rejected_total", reason="too_large") == 1
    assert moved("analytics_events_rejected_total", reason="queue_full") == 1
    assert moved("analytics_events_rejected_total", reason="unavailable") == 0
    assert moved("analytics_enqueue_seconds_count") == 5  # every event that reached Redis
    assert after[("analytics_queue_length", (("shard", "0"),))] == 3
    assert after[("analytics_drain_lag_seconds", ())] >= 3500  # the hour-old event waits
    assert after[("analytics_dead_letters", ())] == 1
    assert after[("analytics_inflight_batches", ())] == 1
    assert after[("analytics_redis_up", ())] == 1


async def test_redis_away_is_still_an_answer(build: Callable[..., Settings]) -> None:
    """Redis down: /metrics answers what it knows (counters, redis_up 0), never a 500."""
    settings = build(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    async with web(settings) as http:
        before = await scrape(http)
        assert (await http.post("/event", json=event())).status_code == 503
        after = await scrape(http)
    assert after[("analytics_redis_up", ())] == 0
    assert not any(name == "analytics_queue_length" for name, _ in after)
    key = ("analytics_events_rejected_total", (("reason", "unavailable"),))
    assert after[key] - before[key] == 1
