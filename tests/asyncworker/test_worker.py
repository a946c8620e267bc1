"""The worker's batches, replays and adoptions, in process, on real Redis and a real database.

The interleavings that the process-level fault tests only hit by chance (a batch
replayed after its commit, a worker whose heartbeat lapses while it is still busy)
are set up here step by step, and every case asserts exact row counts, on MariaDB
and on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from asyncworker.consumer import BatchProcessor, Consumer
from asyncworker.keys import batch_id_of, new_batch_marker
from asyncworker.queue import AdoptResult, Queue
from asyncworker.worker import Worker
from asyncworker.writer import write_batch
from db.engine import create_engine
from db.event import Event
from db.models import events as events_table
from db.models import ingest_batches
from db.settings import Settings

WorkerFactory = Callable[..., Awaitable[Worker]]


def event(n: int, site: str = "w-site") -> Event:
    return Event(
        site_id=site,
        event_type="pageview",
        path=f"/p/{n}",
        user_id=f"u{n}",
        timestamp=datetime(2024, 5, 1, 12, 0, n % 60, tzinfo=timezone.utc),
    )


@pytest.fixture
async def workers(schema: Settings) -> AsyncIterator[WorkerFactory]:
    """Build in-process :class:`Worker` objects (own Redis client and engine each)."""
    made: list[Worker] = []

    async def build(**overrides: Any) -> Worker:
        settings = schema.with_overrides(**overrides)
        worker = Worker(
            settings, Queue(settings, Redis.from_url(settings.redis_url)), create_engine(settings)
        )
        made.append(worker)
        return worker

    yield build
    for worker in made:
        await worker.ctx.queue.close()
        await worker.ctx.engine.dispose()


async def rows(worker: Worker) -> int:
    async with worker.ctx.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(events_table)) or 0)


async def ledger(worker: Worker) -> int:
    async with worker.ctx.engine.connect() as conn:
        total = await conn.scalar(select(func.coalesce(func.sum(ingest_batches.c.events), 0)))
    return int(total or 0)


async def fill_inflight(redis: Redis, key: str, marker: bytes, batch: list[Event]) -> list[bytes]:
    """Lay out an in-flight list as a consumer does: marker at the tail, oldest next to it."""
    raws = [e.to_wire() for e in batch]
    await redis.rpush(key, marker)
    for raw in raws:
        await redis.lpush(key, raw)
    return raws


async def test_write_batch_twice_stores_once(workers: WorkerFactory) -> None:
    worker = await workers()
    batch = [event(n) for n in range(7)]
    assert await write_batch(worker.ctx.engine, "replayed-batch", batch) is True
    assert await write_batch(worker.ctx.engine, "replayed-batch", batch) is False
    assert await rows(worker) == 7
    assert await ledger(worker) == 7


async def test_batch_processed_twice_for_the_same_marker_counts_once(
    workers: WorkerFactory,
) -> None:
    """A crash after the commit and before the acknowledgement replays the whole batch."""
    worker = await workers()
    redis, key = worker.ctx.queue.redis, worker.ctx.keys.inflight("replay-consumer")
    marker = new_batch_marker()
    processor = BatchProcessor(worker.ctx, key)
    raws = await fill_inflight(redis, key, marker, [event(n) for n in range(5)])
    await processor.process(marker, raws)
    assert await redis.exists(key) == 0
    # The same list again, as if the acknowledgement had never happened.
    await fill_inflight(redis, key, marker, [event(n) for n in range(5)])
    await processor.process(marker, raws)
    assert await redis.exists(key) == 0
    assert await rows(worker) == 5
    assert await ledger(worker) == 5


async def test_consumer_resumes_its_committed_batch_without_duplicates(
    workers: WorkerFactory,
) -> None:
    """A consumer that finds its own list (marker at the tail) already committed acks it."""
    worker = await workers()
    consumer = Consumer(worker.ctx, worker.consumer_ids[0])
    marker = new_batch_marker()
    batch = [event(n) for n in range(4)]
    await fill_inflight(worker.ctx.queue.redis, consumer.inflight, marker, batch)
    assert await write_batch(worker.ctx.engine, batch_id_of(marker) or "", batch)
    await consumer.run_once()
    assert await worker.ctx.queue.redis.exists(consumer.inflight) == 0
    assert await rows(worker) == 4


async def test_dead_workers_list_is_adopted_only_after_its_heartbeat_expires(
    workers: WorkerFactory,
) -> None:
    dead = await workers(heartbeat_ttl_s=1.0)
    adopter = await workers()
    await dead.register()
    key = dead.ctx.keys.inflight(dead.consumer_ids[2])
    await fill_inflight(dead.ctx.queue.redis, key, new_batch_marker(), [event(n) for n in range(6)])
    assert await adopter.adopt_orphans() == 0  # heartbeat still alive
    assert await dead.ctx.queue.redis.llen(key) == 7
    await asyncio.sleep(1.2)  # the real TTL runs out
    assert await adopter.adopt_orphans() == 1
    assert await adopter.adopt_orphans() == 0  # nothing left to adopt a second time
    assert await dead.ctx.queue.redis.exists(key) == 0
    assert not await dead.ctx.queue.redis.hexists(dead.ctx.keys.workers, dead.worker_id)
    assert await rows(adopter) == 6


@pytest.mark.parametrize("adopter_first", [False, True])
async def test_lapsed_heartbeat_adoption_mid_batch_counts_once(
    workers: WorkerFactory, adopter_first: bool
) -> None:
    """A live worker whose heartbeat lapsed (a long pause) is adopted while it is still
    filling its batch; it then moves more events into a new list under the same key.

    Whoever commits the batch id first, every event must be stored exactly once. Before
    the fix the owner committed the events it moved after the adoption under the adopted
    batch's id, then stored them again from its leftover list: 5 rows for 3 events.
    """
    owner = await workers(batch_size=3, flush_interval_ms=5000)
    adopter = await workers()
    await owner.register()
    redis, keys = owner.ctx.queue.redis, owner.ctx.keys
    consumer = Consumer(owner.ctx, owner.consumer_ids[0])
    await redis.lpush(keys.queue, event(1).to_wire())
    task = asyncio.create_task(consumer.run_once())
    for _ in range(100):  # the consumer took e1 and waits for more
        if await redis.llen(consumer.inflight) == 2:
            break
        await asyncio.sleep(0.02)
    assert await redis.llen(consumer.inflight) == 2
    await redis.delete(owner.heartbeat_key)  # the heartbeat lapses
    mine = keys.inflight(adopter.janitor_id)
    adopted = await adopter.ctx.queue.adopt(consumer.inflight, owner.heartbeat_key, mine)
    assert adopted is AdoptResult.ADOPTED
    finish_adopted = adopter._finish_own_list(BatchProcessor(adopter.ctx, mine), mine)
    if adopter_first:
        await finish_adopted
    await redis.lpush(keys.queue, event(2).to_wire(), event(3).to_wire())
    await asyncio.wait_for(task, 10)  # the owner's batch is full: it stores and acks
    if not adopter_first:
        await finish_adopted
    await owner.beat()
    while await redis.exists(consumer.inflight):  # what the owner holds now, if anything
        await asyncio.wait_for(consumer.run_once(), 10)
    assert await redis.llen(keys.queue) == 0
    assert await redis.exists(mine) == 0
    assert await rows(owner) == 3
    assert await ledger(owner) == 3


class AdoptAfterFirstTouch(Redis):
    """A real Redis client that, right after the first command touching ``key``, lets
    another worker adopt that list: the interleaving of a janitor racing a consumer."""

    key: str = ""
    adopt: Callable[[], Awaitable[Any]] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        result = await super().execute_command(*args, **options)
        names = {
            a.decode() if isinstance(a, bytes) else a for a in args if isinstance(a, (str, bytes))
        }
        if self.adopt is not None and self.key in names:
            adopt, self.adopt = self.adopt, None
            await adopt()
        return result


async def test_leftover_list_adopted_while_the_consumer_claims_it_counts_once(
    workers: WorkerFactory,
) -> None:
    """The owner finds a leftover list without a marker (events moved after an earlier
    adoption) just as a janitor adopts it. Before the fix the owner read the list and
    pushed its marker in two steps, so both sides stored the same event under two batch ids."""
    owner = await workers()
    adopter = await workers()
    await owner.register()
    redis, keys = owner.ctx.queue.redis, owner.ctx.keys
    consumer_id = owner.consumer_ids[0]
    key = keys.inflight(consumer_id)
    await redis.lpush(key, event(9).to_wire())
    await redis.delete(owner.heartbeat_key)
    mine = keys.inflight(adopter.janitor_id)
    hooked = AdoptAfterFirstTouch.from_url(owner.settings.redis_url)
    hooked.key = key

    async def adopt() -> None:
        assert await adopter.ctx.queue.adopt(key, owner.heartbeat_key, mine) is AdoptResult.ADOPTED

    hooked.adopt = adopt
    owner.ctx.queue = Queue(owner.settings, hooked)
    try:
        await asyncio.wait_for(Consumer(owner.ctx, consumer_id).run_once(), 10)
    finally:
        await hooked.aclose()
    assert hooked.adopt is None, "the adoption did not happen"
    await adopter._finish_own_list(BatchProcessor(adopter.ctx, mine), mine)
    assert await adopter.ctx.queue.redis.exists(key, mine) == 0
    assert await rows(adopter) == 1


async def test_worker_forgotten_during_a_lapse_registers_again(workers: WorkerFactory) -> None:
    """A janitor that sees a worker's heartbeat gone and no in-flight lists drops its entry.
    If that worker was only paused, its next beat must register it again; otherwise its
    lists would never be adopted should it die later."""
    paused = await workers()
    janitor = await workers()
    await paused.register()
    workers_key = paused.ctx.keys.workers
    await paused.ctx.queue.redis.delete(paused.heartbeat_key)
    await janitor.adopt_orphans()
    assert not await paused.ctx.queue.redis.hexists(workers_key, paused.worker_id)
    await paused.beat()
    assert await paused.ctx.queue.redis.hexists(workers_key, paused.worker_id)
    # ... so a later death is noticed and its batch adopted.
    key = paused.ctx.keys.inflight(paused.consumer_ids[1])
    await fill_inflight(paused.ctx.queue.redis, key, new_batch_marker(), [event(1)])
    await paused.ctx.queue.redis.delete(paused.heartbeat_key)
    assert await janitor.adopt_orphans() == 1
    assert await rows(janitor) == 1


async def test_a_list_taken_before_the_next_beat_keeps_its_worker_findable(
    workers: WorkerFactory,
) -> None:
    """Dropped by a janitor during a pause, a worker resumes and moves events into a list
    before its next heartbeat re-registers it, then dies. Claiming and moving register the
    worker in the same script, so the list is still found and adopted, not stranded."""
    paused = await workers()
    janitor = await workers()
    await paused.register()
    await paused.ctx.queue.redis.delete(paused.heartbeat_key)
    await janitor.adopt_orphans()
    assert not await paused.ctx.queue.redis.hexists(paused.ctx.keys.workers, paused.worker_id)
    consumer = Consumer(paused.ctx, paused.consumer_ids[0])
    await paused.ctx.queue.redis.lpush(paused.ctx.keys.queue, event(7).to_wire())
    await paused.ctx.claim(consumer.inflight)  # the consumer's next round, no beat in between
    await paused.ctx.queue.redis.lmove(paused.ctx.keys.queue, consumer.inflight, "RIGHT", "LEFT")
    # ... and the process dies here, its heartbeat still absent.
    assert await janitor.adopt_orphans() == 1
    assert await rows(janitor) == 1
    assert await paused.ctx.queue.redis.exists(consumer.inflight) == 0


async def test_poison_in_a_batch_is_dead_lettered_and_the_rest_committed(
    workers: WorkerFactory,
) -> None:
    worker = await workers()
    redis, keys = worker.ctx.queue.redis, worker.ctx.keys
    good = [event(n).to_wire() for n in range(3)]
    poison = [b"not json", b"[1, 2]", b'{"site_id": "s"}', b'{"site_id": "\xff\xfe"}']
    for raw in [good[0], *poison, *good[1:]]:
        await redis.lpush(keys.queue, raw)
    consumer = Consumer(worker.ctx, worker.consumer_ids[0])
    await asyncio.wait_for(consumer.run_once(), 10)
    assert await rows(worker) == 3
    assert await ledger(worker) == 3
    assert await redis.llen(keys.dead) == 4
    assert await redis.exists(consumer.inflight) == 0
    assert worker.ctx.dead_lettered == 4


async def test_a_batch_of_only_poison_writes_no_ledger_row(workers: WorkerFactory) -> None:
    worker = await workers()
    key = worker.ctx.keys.inflight("only-poison")
    marker = new_batch_marker()
    await worker.ctx.queue.redis.rpush(key, marker)
    await worker.ctx.queue.redis.lpush(key, b"not json", b"[1]")
    await BatchProcessor(worker.ctx, key).process(marker, [b"not json", b"[1]"])
    async with worker.ctx.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(ingest_batches)) == 0
    assert await worker.ctx.queue.redis.llen(worker.ctx.keys.dead) == 2
    assert not await worker.ctx.queue.redis.exists(key)


async def test_a_crashed_consumer_makes_the_worker_exit_non_zero(
    workers: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop dying of a bug must not look like a clean shutdown to a process manager."""

    async def broken(self: Consumer) -> None:
        raise RuntimeError("bug in a consumer loop")

    monkeypatch.setattr(Consumer, "run_once", broken)
    worker = await workers(worker_concurrency=2, shutdown_grace_s=2.0)
    assert await asyncio.wait_for(worker.run(), 30) == 1


def test_a_pool_timeout_is_retried_not_dead_lettered() -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from asyncworker.writer import is_transient

    assert is_transient(PoolTimeoutError("QueuePool limit reached"))
    assert not is_transient(ValueError("a row the database refuses"))


async def test_a_missing_table_is_waited_out_not_dead_lettered(workers: WorkerFactory) -> None:
    """A schema problem (say, a worker started before a migration) is the database's
    fault, not the events': the batch waits and is stored once the table is back."""
    worker = await workers()
    async with worker.ctx.engine.begin() as conn:
        await conn.run_sync(events_table.drop)
    key = worker.ctx.keys.inflight("schema-wait")
    marker = new_batch_marker()
    raws = await fill_inflight(worker.ctx.queue.redis, key, marker, [event(n) for n in range(3)])
    task = asyncio.create_task(BatchProcessor(worker.ctx, key).process(marker, raws))
    await asyncio.sleep(1.5)
    assert not task.done()
    assert await worker.ctx.queue.redis.llen(worker.ctx.keys.dead) == 0
    async with worker.ctx.engine.begin() as conn:
        await conn.run_sync(events_table.create)
    await asyncio.wait_for(task, 30)
    assert await rows(worker) == 3
    assert await worker.ctx.queue.redis.llen(worker.ctx.keys.dead) == 0
