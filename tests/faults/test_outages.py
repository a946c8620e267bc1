"""The database away from the worker, Redis away from the web process: a TCP proxy cut.

The proxy closes its listening socket (new connections are refused) and aborts the
open ones, which is what a crashed server or a broken network looks like to the
client; restoring it listens again on the same port.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.faults.conftest import FaultServer
from tests.faults.helpers import (
    LoadGenerator,
    TcpProxy,
    make_events,
    pending_in_redis,
    proxied_url,
    redis_for,
    sql_rows,
    stats_total,
    stored_count,
)
from tests.helpers import wait_until

UNREACHABLE = "database unreachable"
REACHABLE_AGAIN = "database reachable again"


@pytest.mark.slow
def test_database_unreachable_worker_keeps_events_and_catches_up(launch, proxies) -> None:
    """Fault 3: one log line when the database goes, one when it is back, nothing lost."""
    server: FaultServer = launch(workers=0)
    proxy: TcpProxy = proxies("127.0.0.1", 3306)
    worker = server.start_worker(DATABASE_URL=proxied_url(server.env["DATABASE_URL"], proxy))
    before = LoadGenerator(server.base_url, make_events(300, prefix="dbdown-a")).start().join()
    assert dict(before.statuses) == {202: 300}
    wait_until(lambda: stored_count(server.settings) == 300, 30, "the first events stored")

    proxy.cut()
    connections_before_cut = proxy.accepted
    during = LoadGenerator(server.base_url, make_events(700, prefix="dbdown-b")).start().join()
    assert dict(during.statuses) == {202: 700}
    time.sleep(8)  # long enough for the backoff to reach its cap
    assert worker.popen.poll() is None
    assert stored_count(server.settings) == 300
    assert pending_in_redis(server.settings) == 700  # kept, in the queue or in flight
    log = worker.output()
    assert log.count(UNREACHABLE) == 1, log
    assert REACHABLE_AGAIN not in log

    proxy.restore()
    caught_up = wait_until(
        lambda: stored_count(server.settings) == 1_000, 30, "the worker to catch up"
    )
    # Backoff is capped at 5 s (with jitter), so recovery is noticed within that.
    assert caught_up < 5 + 3, f"caught up {caught_up:.1f} s after the database came back"
    assert proxy.accepted > connections_before_cut  # it reconnected through the proxy
    wait_until(lambda: pending_in_redis(server.settings) == 0, 10, "the in-flight lists to clear")
    log = worker.output()
    assert log.count(UNREACHABLE) == 1, log
    assert log.count(REACHABLE_AGAIN) == 1, log
    assert "refused by the database" not in log
    assert "Traceback" not in log
    sites = {**before.accepted_by_site, **during.accepted_by_site}
    assert stats_total(server.base_url, sites) == 1_000
    assert sql_rows(server.settings, "SELECT SUM(events) FROM ingest_batches")[0][0] == 1_000
    r = redis_for(server.settings)
    try:
        assert r.llen("{" + server.settings.queue_name + "}:dead") == 0
    finally:
        r.close()


def post(http: httpx.Client, n: int) -> httpx.Response:
    return http.post(
        "/event",
        json={
            "site_id": "redisdown",
            "event_type": "pageview",
            "path": f"/{n}",
            "timestamp": "2024-05-01T10:00:00Z",
        },
    )


@pytest.mark.slow
def test_redis_unreachable_at_ingestion_answers_503_then_202(launch, proxies) -> None:
    """Fault 4: 503 JSON with Retry-After while Redis is away, 202 as soon as it is back."""
    redis_at = urlsplit(REDIS_URL)
    proxy: TcpProxy = proxies(redis_at.hostname or "127.0.0.1", redis_at.port or 6379)
    server: FaultServer = launch(workers=1, web_env={"REDIS_URL": proxied_url(REDIS_URL, proxy)})
    accepted = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for n in range(20):
            assert post(http, n).status_code == 202
            accepted += 1
        assert http.get("/readyz").status_code == 200

        proxy.cut()
        for n in range(10):
            started = time.monotonic()
            response = post(http, 100 + n)
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert set(response.json()) == {"error"}
            assert int(response.headers["Retry-After"]) > 0
            assert took < 5, f"a 503 took {took:.1f} s"
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["redis"] is False
        assert ready.json()["database"] is True
        assert http.get("/healthz").status_code == 200
        assert server.web.popen.poll() is None

        proxy.restore()
        first = post(http, 200)
        assert first.status_code == 202, first.text  # the very first request after
        accepted += 1
        for n in range(19):
            assert post(http, 201 + n).status_code == 202
            accepted += 1
        assert http.get("/readyz").status_code == 200
    assert "Traceback" not in server.web.output()
    wait_until(lambda: stored_count(server.settings) >= accepted, 30, "the worker to store")
    time.sleep(0.5)
    assert stored_count(server.settings) == accepted == 40
    assert stats_total(server.base_url, ["redisdown"]) == 40
