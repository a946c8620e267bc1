"""The Queue's exactly-once unit tests, again on a real Redis Cluster.

The tests of ``tests/asyncworker/test_queue.py`` run here unchanged, with the
cluster's settings (``tests/cluster/conftest.py``), once with ``QUEUE_SHARDS=1`` and
once with 3, where the queue under test is the last shard (its own hash tag, so its
slot is another master's than shard 0's in general).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from asyncworker.consumer import dead_letter_entry
from asyncworker.deadletters import dead_letters_command
from asyncworker.queue import EnqueueResult, Queue
from db.settings import Settings
from tests.asyncworker.test_queue import *  # noqa: F403 - the same tests, on the cluster
from tests.helpers import queued_event


@pytest.fixture
async def queue(settings_factory: Callable[..., Settings], sqlite_url: str) -> AsyncIterator[Queue]:
    root = Queue.for_worker(settings_factory(sqlite_url))
    yield root.shard(root.settings.queue_shards - 1)
    await root.close()


async def test_the_shards_spread_over_the_masters_and_sum_up(
    settings_factory: Callable[..., Settings], sqlite_url: str, shards: int
) -> None:
    async with Queue.for_web(settings_factory(sqlite_url)) as queue:
        for n in range(30):
            outcome = await queue.enqueue_event(queued_event("site", None, f"user-{n}"), None)
            assert outcome is EnqueueResult.ACCEPTED
        lengths = [await q.length() for q in queue.shards()]
        assert sum(lengths) == 30
        assert all(lengths) and len(lengths) == shards
        assert await queue.totals() == (30, 0)
        assert await queue.live_counts(5, "site") == (30, 30)
        # A visitor's events always land on the same shard.
        assert len({queue.shard_for("site", "user-1", None) for _ in range(5)}) == 1


async def test_wait_for_one_replica_is_acknowledged_on_a_whole_cluster(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url, REDIS_WAIT_REPLICAS="1")
    async with Queue.for_web(settings) as queue:
        assert await queue.enqueue_event(queued_event("s", "id-1"), None) is EnqueueResult.ACCEPTED
        assert await queue.enqueue_event(queued_event("s", "id-1"), None) is EnqueueResult.DUPLICATE
    settings = settings_factory(sqlite_url, REDIS_WAIT_REPLICAS="2")  # only 1 replica each
    async with Queue.for_web(settings) as queue:
        assert (
            await queue.enqueue_event(queued_event("s", "id-2"), None) is EnqueueResult.UNREPLICATED
        )
        # Queued on the master: a retry is not queued again, and not a 202 either.
        assert (
            await queue.enqueue_event(queued_event("s", "id-2"), None) is EnqueueResult.UNREPLICATED
        )
        assert (await queue.totals())[0] == 2


async def test_dead_letters_are_listed_requeued_and_purged_across_shards(
    settings_factory: Callable[..., Settings],
    sqlite_url: str,
    shards: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_factory(sqlite_url)
    async with Queue.for_worker(settings) as root:
        for queue in root.shards():
            inflight = queue.keys.inflight("c")
            [marker] = await queue.claim(inflight, "w", b"{}")
            entry = dead_letter_entry(b"raw-%d" % queue.keys.shard, "poison", "b")
            assert await queue.finish(inflight, marker, [entry])
        await dead_letters_command(settings, requeue=False, purge=False, limit=10)
        assert f"{shards} dead letter(s)" in capsys.readouterr().out
        await dead_letters_command(settings, requeue=True, purge=False, limit=10)
        assert f"requeued {shards} dead letter(s)" in capsys.readouterr().out
        # Each went back onto the queue of the shard it died on.
        for queue in root.shards():
            assert await queue.redis.lrange(queue.keys.queue, 0, -1) == [
                b"raw-%d" % queue.keys.shard
            ]
        assert await root.totals() == (shards, 0)
        for queue in root.shards():
            inflight = queue.keys.inflight("c")
            [marker] = await queue.claim(inflight, "w", b"{}")
            await queue.finish(inflight, marker, [b"x"])
        await dead_letters_command(settings, requeue=False, purge=True, limit=10)
        assert f"purged {shards} dead letter(s)" in capsys.readouterr().out
        assert await root.totals() == (shards, 0)


@pytest.mark.parametrize("shards", [1], ids=["from1"])
async def test_after_a_shard_change_a_retry_meets_its_dedupe_key_on_the_old_shard(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    async with Queue.for_web(settings_factory(sqlite_url)) as before:
        for n in range(20):
            outcome = await before.enqueue_event(queued_event("s", f"id-{n}", f"user-{n}"), None)
            assert outcome is EnqueueResult.ACCEPTED
    changed = settings_factory(sqlite_url, QUEUE_SHARDS="3", QUEUE_SHARDS_PREVIOUS="1")
    async with Queue.for_web(changed) as after:
        moved = [n for n in range(20) if after.shard_for("s", f"user-{n}", None) != 0]
        assert moved  # some visitors now belong to another shard
        for n in range(20):
            outcome = await after.enqueue_event(queued_event("s", f"id-{n}", f"user-{n}"), None)
            assert outcome is EnqueueResult.DUPLICATE
        assert await after.totals() == (20, 0)
    # Without the previous count, the moved visitors' retries would be queued again.
    async with Queue.for_web(settings_factory(sqlite_url, QUEUE_SHARDS="3")) as unaware:
        for n in moved:
            outcome = await unaware.enqueue_event(queued_event("s", f"id-{n}", f"user-{n}"), None)
            assert outcome is EnqueueResult.ACCEPTED
