"""The key layout per shard and the choice of shard: data at rest, so pinned exactly."""

from __future__ import annotations

from asyncworker.keys import QueueKeys, shard_of


def test_shard_0_keeps_the_keys_of_a_single_queue() -> None:
    keys = QueueKeys("event_queue")
    assert (keys.queue, keys.tag, keys.workers, keys.dead) == (
        "event_queue",
        "{event_queue}",
        "{event_queue}:workers",
        "{event_queue}:dead",
    )
    assert QueueKeys("event_queue", 0).inflight("c") == "{event_queue}:inflight:c"


def test_other_shards_have_a_hash_tag_of_their_own() -> None:
    keys = QueueKeys("event_queue", 2)
    assert keys.queue == keys.tag == "{event_queue:2}"
    assert keys.inflight("c") == "{event_queue:2}:inflight:c"
    assert keys.heartbeat("w") == "{event_queue:2}:heartbeat:w"
    assert keys.seen("s", "e").startswith("{event_queue:2}:seen:")


def test_shard_of_is_stable_spread_and_in_range() -> None:
    # Pinned values: a change would move every visitor to another shard.
    assert [shard_of("site", f"user-{n}", 3) for n in range(8)] == [0, 0, 0, 2, 2, 1, 1, 0]
    assert shard_of("site", "anyone", 1) == 0
    counts = [0, 0, 0]
    for n in range(3_000):
        counts[shard_of("site", f"user-{n}", 3)] += 1
    assert all(800 < c < 1_200 for c in counts), counts
