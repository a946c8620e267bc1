"""Poison in the queue, a full queue: refused with a reason, never lost, never a crash."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone

import httpx
import orjson
import pytest

from db.event import Event
from tests.faults.conftest import FaultServer
from tests.faults.helpers import (
    LoadGenerator,
    make_events,
    redis_for,
    sql_rows,
    stats_total,
    stored_count,
)
from tests.helpers import wait_until

POISON = {
    b"this is not json": "not valid JSON",
    b"[1, 2, 3]": "body must be a JSON object",
    b'"a string"': "body must be a JSON object",
    b'{"event_type": "pageview", "timestamp": "2024-05-01T00:00:00Z"}': "site_id required",
    b'{"site_id": "s", "event_type": "pageview"}': "timestamp required",
    b'{"site_id": "\xff\xfe", "event_type": "pageview"}': "not valid JSON",
}


def good_event(n: int) -> bytes:
    return Event(
        "poison-site", "pageview", f"/ok/{n}", f"u{n}", datetime(2024, 5, 1, 9, tzinfo=timezone.utc)
    ).to_wire()


@pytest.mark.slow
def test_poison_messages_are_dead_lettered_listed_and_requeued(launch) -> None:
    """Fault 5: each poison message lands in ``{queue}:dead`` with its reason and time, the
    good events of its batch are committed together, and the worker keeps going."""
    server: FaultServer = launch(workers=0, BATCH_SIZE="500", WORKER_CONCURRENCY="1")
    settings = server.settings
    queue, dead = settings.queue_name, "{" + settings.queue_name + "}:dead"
    r = redis_for(settings)
    try:
        # One batch: good and poison interleaved, all queued before the worker starts.
        batch = []
        for n, raw in enumerate(POISON):
            batch += [good_event(2 * n), raw, good_event(2 * n + 1)]
        for raw in batch:
            r.lpush(queue, raw)
        worker = server.start_worker()
        wait_until(lambda: r.llen(dead) == len(POISON), 20, "the dead letters")
        wait_until(lambda: stored_count(settings) == 2 * len(POISON), 20, "the good events")
        assert sql_rows(settings, "SELECT events FROM ingest_batches") == [(12,)]  # one batch

        entries = [orjson.loads(e) for e in reversed(r.lrange(dead, 0, -1))]
        assert [e["reason"] for e in entries] == list(POISON.values())
        for entry, raw in zip(entries, POISON, strict=True):
            if "raw" in entry:
                assert entry["raw"].encode() == raw
            else:
                assert base64.b64decode(entry["raw_base64"]) == raw
            at = datetime.strptime(entry["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
            assert (
                abs(at.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds()
                < 60
            )

        # The worker keeps going.
        for n in range(100, 110):
            r.lpush(queue, good_event(n))
        wait_until(lambda: stored_count(settings) == 22, 20, "events after the poison")
        assert worker.popen.poll() is None
        assert "Traceback" not in worker.output()

        listed = server.cli("dead-letters")
        assert listed.returncode == 0, listed.stderr
        assert f"{len(POISON)} dead letter(s)" in listed.stdout
        for reason in POISON.values():
            assert reason in listed.stdout
        assert "this is not json" in listed.stdout

        # Requeue with no worker running: every message goes back byte for byte, once.
        assert worker.stop() == 0
        requeued = server.cli("dead-letters", "--requeue")
        assert requeued.returncode == 0, requeued.stderr
        assert f"requeued {len(POISON)} dead letter(s)" in requeued.stdout
        assert r.llen(dead) == 0
        assert sorted(r.lrange(queue, 0, -1)) == sorted(POISON)
        again = server.cli("dead-letters", "--requeue")
        assert "requeued 0 dead letter(s)" in again.stdout
        assert r.llen(queue) == len(POISON)
    finally:
        r.close()
    assert stats_total(server.base_url, ["poison-site"]) == 22


@pytest.mark.slow
def test_queue_longer_than_max_answers_503_and_accepts_nothing_beyond(launch) -> None:
    """Fault 6: with MAX_QUEUE_LENGTH=50 and no worker, exactly 50 of 80 are accepted."""
    server: FaultServer = launch(workers=0, MAX_QUEUE_LENGTH="50")
    settings = server.settings
    result = (
        LoadGenerator(server.base_url, make_events(80, prefix="full"), concurrency=16)
        .start()
        .join()
    )
    assert result.errors == []
    assert dict(result.statuses) == {202: 50, 503: 30}
    r = redis_for(settings)
    try:
        assert r.llen(settings.queue_name) == 50
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            response = http.post("/event", json={"site_id": "full-x", "event_type": "pageview"})
            assert response.status_code == 503
            assert response.headers["content-type"].startswith("application/json")
            assert set(response.json()) == {"error"}
            assert int(response.headers["Retry-After"]) > 0
            assert r.llen(settings.queue_name) == 50
            # A worker drains the queue: exactly what was accepted is stored, then room again.
            server.start_worker()
            wait_until(lambda: stored_count(settings) >= 50, 30, "the queue to drain")
            time.sleep(0.3)
            assert stored_count(settings) == 50
            assert stats_total(server.base_url, result.accepted_by_site) == 50
            again = http.post("/event", json={"site_id": "full-x", "event_type": "pageview"})
            assert again.status_code == 202
    finally:
        r.close()
