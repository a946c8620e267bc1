"""Unicode round trips, event_id dedupe, and the health endpoints and checks.

The round trips run the real ASGI app in process and the real worker as a task on
the same loop, on MariaDB and on SQLite; the health checks use the real processes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from asyncworker.queue import Queue
from asyncworker.worker import Worker
from db.engine import create_engine
from db.settings import Settings
from tests.conftest import ROOT, LiveServer
from tests.faults.helpers import sql_rows

DAY = "2024-05-01"
SITE = "站点-שלום-🎉"
PATH_EMOJI = "/مرحبا/😀/𝄞?q=ñ"
PATH_RTL = "/עברית/דף‏"
USER_FAMILY = "משתמש-👩‍👩‍👧‍👦-🇮🇱"
USER_RTL = "مستخدم-٣"
EVENT_TYPE = "clic-💥"


@pytest.fixture
async def running_worker(schema: Settings) -> AsyncIterator[Worker]:
    """The real worker (all its loops) as a task on the test's loop."""
    worker = Worker(schema, Queue(schema, Redis.from_url(schema.redis_url)), create_engine(schema))
    task = asyncio.create_task(worker.run())
    yield worker
    worker.ctx.stopping.set()
    assert await asyncio.wait_for(task, 15) == 0
    await worker.ctx.queue.close()
    await worker.ctx.engine.dispose()


async def wait_stats(client: httpx.AsyncClient, params: dict[str, str], total: int) -> Any:
    for _ in range(200):
        body = (await client.get("/stats", params=params)).json()
        if body.get("total_views") == total:
            break
        await asyncio.sleep(0.05)
    return body


async def test_four_byte_and_right_to_left_text_round_trips(
    client: httpx.AsyncClient, running_worker: Worker, schema: Settings
) -> None:
    """Fault 8: emoji (4-byte UTF-8, ZWJ sequences, flags) and RTL text, byte for byte."""
    sent = [
        {"site_id": SITE, "event_type": EVENT_TYPE, "path": PATH_EMOJI, "user_id": USER_FAMILY},
        {"site_id": SITE, "event_type": EVENT_TYPE, "path": PATH_EMOJI, "user_id": USER_FAMILY},
        {"site_id": SITE, "event_type": "pageview", "path": PATH_RTL, "user_id": USER_RTL},
    ]
    for body in sent:
        response = await client.post("/event", json={**body, "timestamp": f"{DAY}T08:00:00Z"})
        assert response.status_code == 202, response.text
    stats = await wait_stats(client, {"site_id": SITE, "date": DAY}, 3)
    assert stats == {
        "site_id": SITE,
        "date": DAY,
        "total_views": 3,
        "unique_users": 2,
        "top_paths": [{"path": PATH_EMOJI, "views": 2}, {"path": PATH_RTL, "views": 1}],
    }
    types = (await client.get("/stats/event-types", params={"site_id": SITE, "date": DAY})).json()
    assert types["event_types"] == [
        {"event_type": EVENT_TYPE, "count": 2},
        {"event_type": "pageview", "count": 1},
    ]
    raw = sorted(
        tuple(r) for r in sql_rows(schema, "SELECT site_id, event_type, path, user_id FROM events")
    )
    assert raw == sorted((b["site_id"], b["event_type"], b["path"], b["user_id"]) for b in sent)
    assert sorted(len(r[2].encode()) for r in raw) == sorted(len(b["path"].encode()) for b in sent)


async def test_event_id_dedupes_per_site(client: httpx.AsyncClient, running_worker: Worker) -> None:
    """Same site_id + event_id twice: both 202, counted once; another site: counted again."""

    async def send(site: str, event_id: str) -> int:
        body = {
            "site_id": site,
            "event_type": "pageview",
            "path": "/d",
            "event_id": event_id,
            "timestamp": f"{DAY}T09:00:00Z",
        }
        return (await client.post("/event", json=body)).status_code

    assert [await send("dedupe-a", "evt-1") for _ in range(3)] == [202, 202, 202]
    assert await send("dedupe-b", "evt-1") == 202
    assert await send("dedupe-a", "evt-2") == 202
    a = await wait_stats(client, {"site_id": "dedupe-a", "date": DAY}, 2)
    b = await wait_stats(client, {"site_id": "dedupe-b", "date": DAY}, 1)
    await asyncio.sleep(0.3)  # nothing more arrives late
    a = (await client.get("/stats", params={"site_id": "dedupe-a", "date": DAY})).json()
    assert (a["total_views"], b["total_views"]) == (2, 1)


async def test_readyz_reports_exact_queue_length_and_no_worker(
    client: httpx.AsyncClient,
) -> None:
    for n in range(7):
        body = {"site_id": "ready", "event_type": "pageview", "path": f"/{n}"}
        assert (await client.post("/event", json=body)).status_code == 202
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["queue_length"] == 7
    assert body["workers"] == 0
    assert body["worker_heartbeat_age_s"] is None
    assert body["redis"] is True and body["database"] is True


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", "worker", "--check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_check_and_readyz_with_a_live_worker(live_server: LiveServer) -> None:
    alive = check(live_server.env)
    assert alive.returncode == 0, alive.stdout + alive.stderr
    assert alive.stdout.startswith("ok: 1 worker(s) alive")
    nobody = check({**live_server.env, "REDIS_QUEUE_NAME": "queue_without_any_worker"})
    assert nobody.returncode == 1, nobody.stdout + nobody.stderr
    assert nobody.stdout.startswith("unhealthy")
    body = httpx.get(live_server.base_url + "/readyz", timeout=10).json()
    assert body["status"] == "ok"
    assert body["workers"] == 1
    ttl = live_server.settings.heartbeat_ttl_s
    assert 0 <= body["worker_heartbeat_age_s"] <= ttl
    assert isinstance(body["queue_length"], int)
