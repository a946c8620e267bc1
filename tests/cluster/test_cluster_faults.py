"""Exactly once on a Redis Cluster: workers killed, a master killed, shards changed live.

Real ``analytics web`` and ``analytics worker`` processes on the session's loopback
cluster (``tests/cluster/conftest.py``). Every figure is checked against the answers
the web processes gave: accepted (202) = stored (rows per site) = counted (/stats),
and no event (each has its own path) stored twice. Run with ``-s`` to see figures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import httpx
import pytest

from asyncworker.keys import QueueKeys
from tests.cluster.conftest import LocalCluster
from tests.cluster.system import ClusterSystem, RetryingLoad, cluster_events, merge
from tests.faults.helpers import LoadGenerator, stored_count
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def split(events: list[dict[str, object]], parts: int) -> list[list[dict[str, object]]]:
    return [events[i::parts] for i in range(parts)]


def test_workers_sigkilled_at_random_with_two_webs_and_three_shards(
    cluster_system: Callable[..., ClusterSystem],
) -> None:
    system = cluster_system(QUEUE_SHARDS="3")
    for _ in range(2):
        system.start_web()
    for _ in range(3):
        system.start_worker()
    events = cluster_events(20_000, "chaos")
    loads = [
        RetryingLoad(url, part, concurrency=16).start()
        for url, part in zip(system.web_urls, split(events, 2), strict=True)
    ]
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    kills, kill_points = 0, []

    def sent() -> int:
        return sum(load.progress() for load in loads)

    def over() -> bool:
        return all(load.done.is_set() for load in loads)

    # Random points of the flow, by events sent (not by time: the edge's speed varies
    # from run to run), then a few more once it is over.
    marks = sorted(rng.sample(range(1_000, 15_000), 6))
    while marks or kills < 8:
        if marks:
            mark = marks.pop(0)
            wait_until(lambda m=mark: sent() >= m or over(), 120, "the flow")
        else:
            time.sleep(rng.uniform(0.2, 1.0))
        victim = rng.choice(system.live_workers())
        kill_points.append(sent())
        victim.kill()
        kills += 1
        system.start_worker()
    result = merge(*(load.join() for load in loads))
    system.drain(shards=3)
    figures = system.figures(result)
    print(
        f"\ncluster kill test (seed {seed}): sent {result.sent}, accepted {result.accepted}, "
        f"stored {sum(figures['stored'].values())}, counted {figures['counted']}, kills {kills} "
        f"(at {kill_points}), batches adopted {system.adoptions()}, "
        f"503s retried {sum(load.unavailable for load in loads)}"
    )
    assert result.errors == []
    assert dict(result.statuses) == {202: 20_000}
    assert sum(1 for p in kill_points if p < result.sent) >= 5, "kills must land in the flow"
    assert figures == {
        "stored": dict(result.accepted_by_site),
        "counted": 20_000,
        "doubled": [],
    }


def test_master_failover_during_ingestion_with_wait_for_one_replica(
    cluster_system: Callable[..., ClusterSystem], redis_cluster: LocalCluster
) -> None:
    system = cluster_system(QUEUE_SHARDS="3", REDIS_WAIT_REPLICAS="1")
    system.start_web()
    for _ in range(2):
        system.start_worker()
    events = cluster_events(6_000, "failover")
    load = RetryingLoad(system.web_urls[0], events, concurrency=16).start()
    wait_until(lambda: load.progress() >= 1_500, 120, "a quarter of the events to be sent")
    shard_1 = QueueKeys(system.env_vars["REDIS_QUEUE_NAME"], 1).queue
    victim = redis_cluster.master_of(shard_1)
    redis_cluster.kill(victim)
    survivors = [p for p in redis_cluster.ports if p != victim]
    try:

        def promoted() -> bool:
            if redis_cluster.master_of(shard_1) == victim:
                return False
            return all("cluster_state:ok" in redis_cluster.info(p) for p in survivors)

        wait_until(promoted, 60, "the replica of the killed master to be promoted")
        promoted_at = load.progress()
    finally:
        # Back as a replica of the promoted master: WAIT 1 is answered again there,
        # and later tests have a whole cluster.
        redis_cluster.restart(victim)
    result = load.join()
    system.drain(shards=3)
    figures = system.figures(result)
    print(
        f"\nfailover: master {victim} killed, replica promoted at {promoted_at} sent; "
        f"sent {result.sent}, "
        f"accepted {result.accepted}, 503s retried {load.unavailable}, "
        f"stored {sum(figures['stored'].values())}, counted {figures['counted']}"
    )
    assert result.errors == []
    # Every event got its 202 in the end (503 + retry during the failover, never a 500).
    assert dict(result.statuses) == {202: 6_000}
    assert load.unavailable > 0, "the failover must have been seen by the web edge"
    assert figures == {"stored": dict(result.accepted_by_site), "counted": 6_000, "doubled": []}
    assert "Traceback" not in system.webs[0].output()


def test_queue_shards_changed_from_1_to_3_and_back_with_events_in_flight(
    cluster_system: Callable[..., ClusterSystem],
) -> None:
    """The documented procedure: raising N, workers first, then the web edge; lowering
    N, the web edge first, the workers once the shards that go away are empty."""
    system = cluster_system(QUEUE_SHARDS="1")
    system.start_web()
    old_workers = [system.start_worker(), system.start_worker()]
    events = cluster_events(9_000, "reshard")
    first, second, third = events[:3_000], events[3_000:6_000], events[6_000:]
    load = LoadGenerator(system.web_urls[0], first, concurrency=16).start()
    wait_until(lambda: load.progress() >= 1_000, 120, "a third of the first part to be sent")
    # 1 -> 3, workers first: the new ones serve shards 0..2, the old ones are stopped.
    system.start_worker(QUEUE_SHARDS="3")
    system.start_worker(QUEUE_SHARDS="3")
    for worker in old_workers:
        worker.stop()
    new_web = system.start_web(QUEUE_SHARDS="3", QUEUE_SHARDS_PREVIOUS="1")
    loads = [load, LoadGenerator(new_web, second, concurrency=16).start()]
    wait_until(lambda: stored_count(system.settings) >= 2_000, 120, "events to be stored")
    results = [load.join() for load in loads]
    # 3 -> 1, the web edge first; the 3-shard workers drain shards 1 and 2.
    system.webs[0].stop()
    last_web = system.start_web(QUEUE_SHARDS="1", QUEUE_SHARDS_PREVIOUS="3")
    results.append(LoadGenerator(last_web, third, concurrency=16).start().join())
    system.drain(shards=3)
    for worker in system.live_workers():
        worker.stop()
    system.start_worker(QUEUE_SHARDS="1")
    system.drain(shards=3)
    result = merge(*results)
    figures = system.figures(result)
    print(f"\nreshard: sent {result.sent}, accepted {result.accepted}, {figures['counted']}")
    assert result.errors == []
    assert dict(result.statuses) == {202: 9_000}
    assert figures == {"stored": dict(result.accepted_by_site), "counted": 9_000, "doubled": []}
    ready = httpx.get(last_web + "/readyz", timeout=10).json()
    assert (ready["status"], ready["queue_length"], ready["dead_letters"]) == ("ok", 0, 0)
    assert ready["workers"] == 1
    live = httpx.get(last_web + "/live", timeout=10).json()
    assert live["received_last_5_min"] >= 3_000  # this web process's shard-0 counters
    assert live["worker"]["alive"]
