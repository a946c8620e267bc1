"""Workers SIGKILLed, SIGTERMed and killed mid-batch while events flow: exact counts after.

Every figure is checked three ways: the answers the web process gave (202s), the
rows in ``events`` and the /stats totals, which must all be equal. Run with ``-s``
to see the figures.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.faults.conftest import FaultServer
from tests.faults.helpers import (
    LoadGenerator,
    LoadResult,
    TcpProxy,
    keys_matching,
    make_events,
    pending_in_redis,
    proxied_url,
    redis_for,
    sql_rows,
    stats_total,
    stored_count,
)
from tests.helpers import wait_until


def drain_and_count(
    server: FaultServer, result: LoadResult, timeout: float = 120
) -> dict[str, int]:
    """Wait until Redis holds nothing and every dead worker was adopted; return the figures."""
    settings = server.settings
    r = redis_for(settings)
    live = sum(1 for w in server.workers if w.popen.poll() is None)

    def settled() -> bool:
        return (
            pending_in_redis(settings) == 0
            and r.hlen("{" + settings.queue_name + "}:workers") == live
        )

    try:
        wait_until(settled, timeout, "the queue, the in-flight lists and dead workers to clear")
    finally:
        r.close()
    stored = stored_count(settings)
    ledger = int(sql_rows(settings, "SELECT COALESCE(SUM(events), 0) FROM ingest_batches")[0][0])
    counted = stats_total(server.base_url, result.accepted_by_site)
    per_site = {
        site: int(n)
        for site, n in sql_rows(settings, "SELECT site_id, COUNT(*) FROM events GROUP BY site_id")
    }
    assert per_site == dict(result.accepted_by_site)
    return {"stored": stored, "ledger": ledger, "counted": counted}


def adoptions(server: FaultServer) -> int:
    return sum(w.output().count("adopting the unfinished batch") for w in server.workers)


@pytest.mark.slow
def test_sigkill_worker_at_random_moments_during_20000_events(launch) -> None:
    """Fault 1: >= 5 SIGKILLs (restarted each time) while 20,000 events are POSTed."""
    server = launch()
    events = make_events(20_000, sites=4, prefix="kill")
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    load = LoadGenerator(server.base_url, events, concurrency=32).start()
    kills = 0
    kill_points: list[int] = []
    # Kill at random points of the flow (by events sent, not by time: the edge's speed
    # varies from run to run), plus a few more after it ends.
    marks = sorted(rng.sample(range(1_000, 15_000), 6))
    while marks or kills < 8:
        if marks:
            mark = marks.pop(0)
            wait_until(lambda m=mark: load.progress() >= m or load.done.is_set(), 120, "the flow")
        else:
            time.sleep(rng.uniform(0.2, 1.0))
        worker = server.workers[-1]
        kill_points.append(load.progress())
        worker.kill()  # SIGKILL: no chance to finish or hand anything back
        kills += 1
        server.start_worker()
    result = load.join()
    figures = drain_and_count(server, result)
    print(
        f"\nkill test (seed {seed}): sent {result.sent}, accepted {result.accepted}, "
        f"stored {figures['stored']}, counted {figures['counted']}, "
        f"ledger {figures['ledger']}, kills {kills} (at events sent {kill_points}), "
        f"batches adopted {adoptions(server)}, {result.seconds:.1f} s of load"
    )
    assert result.errors == []
    assert result.sent == 20_000
    assert dict(result.statuses) == {202: 20_000}
    assert kills >= 5
    assert sum(1 for p in kill_points if p < result.sent) >= 5, "kills must land during the flow"
    assert figures == {"stored": 20_000, "ledger": 20_000, "counted": 20_000}


@pytest.mark.slow
def test_two_workers_one_killed(launch) -> None:
    """Fault 2: two workers consume at once; one is SIGKILLed mid-flow and not restarted."""
    server = launch(workers=2)
    load = LoadGenerator(server.base_url, make_events(3_000, prefix="two"), concurrency=32).start()
    wait_until(lambda: load.progress() >= 1_000, 120, "a third of the events to be sent")
    wait_until(lambda: stored_count(server.settings) > 0, 30, "the workers to store events")
    victim, survivor = server.workers
    victim.kill()
    result = load.join()
    figures = drain_and_count(server, result)
    print(
        f"\ntwo workers: sent {result.sent}, accepted {result.accepted}, {figures}, "
        f"batches adopted {adoptions(server)}"
    )
    assert survivor.popen.poll() is None
    assert result.errors == []
    assert dict(result.statuses) == {202: 3_000}
    assert figures == {"stored": 3_000, "ledger": 3_000, "counted": 3_000}
    # The survivor adopted every list of the dead worker (each consumer had at least its marker).
    assert adoptions(server) >= 1


@pytest.mark.slow
def test_sigterm_during_heavy_flow_exits_zero_and_loses_nothing(launch) -> None:
    """Fault 7: SIGTERM mid-flow: exit 0 within the grace period; a new worker drains the rest."""
    server = launch(WORKER_SHUTDOWN_GRACE="5")
    load = LoadGenerator(server.base_url, make_events(3_000, prefix="term"), concurrency=32).start()
    # A fifth of the flow sent (so most of it is still to come) and the worker storing.
    wait_until(lambda: load.progress() >= 600, 120, "a fifth of the events to be sent")
    wait_until(lambda: stored_count(server.settings) > 0, 30, "the worker to store events")
    worker = server.workers[0]
    started = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)
    code = worker.popen.wait(15)
    took = time.monotonic() - started
    assert code == 0, worker.output()
    assert took < 5 + 3, f"shutdown took {took:.1f} s with a 5 s grace period"
    assert "worker stopped" in worker.output()
    assert not load.done.is_set(), "the flow must still be running when the worker stops"
    # A clean stop acknowledged or handed back everything it had taken.
    r = redis_for(server.settings)
    try:
        assert r.hlen("{" + server.settings.queue_name + "}:workers") == 0
    finally:
        r.close()
    result = load.join()
    server.start_worker()
    figures = drain_and_count(server, result)
    print(
        f"\nSIGTERM: sent {result.sent}, accepted {result.accepted}, {figures}, stop {took:.2f} s"
    )
    assert dict(result.statuses) == {202: 3_000}
    assert figures == {"stored": 3_000, "ledger": 3_000, "counted": 3_000}


@pytest.mark.slow
def test_sigterm_with_database_away_hands_batches_back(launch, proxies) -> None:
    """Fault 7, the other branch: a batch that cannot finish in the grace period is handed
    back (left in Redis, heartbeat dropped), the worker still exits 0, and the next worker
    adopts it at once and stores it exactly once."""
    server = launch(workers=0, WORKER_SHUTDOWN_GRACE="2", BATCH_SIZE="100")
    proxy: TcpProxy = proxies("127.0.0.1", 3306)
    db_via_proxy = proxied_url(server.env["DATABASE_URL"], proxy)
    first = server.start_worker(DATABASE_URL=db_via_proxy)
    proxy.cut()
    result = LoadGenerator(server.base_url, make_events(1_000, prefix="handback")).start().join()
    assert dict(result.statuses) == {202: 1_000}
    settings = server.settings
    queue = settings.queue_name
    r = redis_for(settings)
    try:
        wait_until(lambda: r.llen(queue) < 1_000, 20, "the worker to take batches in flight")
        first.popen.send_signal(signal.SIGTERM)
        assert first.popen.wait(15) == 0
        assert "grace period over" in first.output()
        in_flight = pending_in_redis(settings) - r.llen(queue)
        assert in_flight > 0
        # The heartbeat is gone at once, so nobody waits for its TTL.
        assert keys_matching(r, "{" + queue + "}:heartbeat:*") == []
    finally:
        r.close()
    proxy.restore()
    server.start_worker()
    figures = drain_and_count(server, result, timeout=30)
    assert adoptions(server) >= 1
    assert figures == {"stored": 1_000, "ledger": 1_000, "counted": 1_000}


@pytest.mark.slow
def test_killed_mid_batch_list_is_adopted_once_heartbeat_expires(launch, proxies) -> None:
    """A worker SIGKILLed while its batch cannot be written leaves its in-flight list;
    a second worker leaves it alone while the dead worker's heartbeat lives, then adopts it."""
    server = launch(workers=0, WORKER_HEARTBEAT_TTL="5", BATCH_SIZE="100")
    proxy: TcpProxy = proxies("127.0.0.1", 3306)
    first = server.start_worker(DATABASE_URL=proxied_url(server.env["DATABASE_URL"], proxy))
    proxy.cut()
    result = LoadGenerator(server.base_url, make_events(400, prefix="orphan")).start().join()
    assert dict(result.statuses) == {202: 400}
    settings = server.settings
    queue = settings.queue_name
    r = redis_for(settings)
    try:
        wait_until(lambda: r.llen(queue) < 400, 20, "the worker to take batches in flight")
        time.sleep(0.5)  # every consumer is now stuck on a batch it cannot write
        first.kill()
        killed_at = time.monotonic()
        (heartbeat,) = [k.decode() for k in keys_matching(r, "{" + queue + "}:heartbeat:*")]
        dead_id = heartbeat.rsplit(":heartbeat:", 1)[1]
        # The heartbeat was last renewed some time before the kill: it expires when its
        # remaining TTL runs out, not a full WORKER_HEARTBEAT_TTL after the kill.
        expires_at = killed_at + r.pttl(heartbeat) / 1000

        def dead_lists() -> int:
            pattern = "{" + queue + "}:inflight:" + dead_id + ":*"
            return sum(r.llen(k) for k in keys_matching(r, pattern))

        orphaned = dead_lists()
        assert orphaned >= 5  # the markers and the events taken
        second = server.start_worker()
        if expires_at - time.monotonic() > 1.0:  # the dead heartbeat still has > 1 s to live
            assert r.pttl(heartbeat) > 0
            assert dead_lists() == orphaned
            assert "adopting" not in second.output()
        wait_until(lambda: dead_lists() == 0, 15, "the dead worker's lists to be adopted")
        assert not r.exists(heartbeat)
        assert time.monotonic() >= expires_at, "adopted before the heartbeat expired"
        assert "adopting the unfinished batch" in second.output()
    finally:
        r.close()
    figures = drain_and_count(server, result, timeout=30)
    assert figures == {"stored": 400, "ledger": 400, "counted": 400}
