"""One consumer loop: take a batch into an in-flight list, store it, acknowledge it.

Many of these run concurrently in one worker process (``WORKER_CONCURRENCY``);
each owns one in-flight list. See :mod:`asyncworker.queue` for why nothing is
lost or counted twice when a process dies at any instant.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

import orjson
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from asyncworker import metrics
from asyncworker.keys import QueueKeys, batch_id_of, site_of
from asyncworker.queue import Queue
from asyncworker.writer import REFUSALS, is_transient, write_batch_bounded
from db.errors import describe
from db.event import Event, InvalidEvent, decode_wire
from db.settings import Settings

log = logging.getLogger("asyncworker")
T = TypeVar("T")


class ServiceState:
    """Up/down state of one dependency, shared by every loop of the process.

    Logs one line when the service goes away and one when it comes back, never one
    per retry, so an outage of an hour is two lines, not thousands.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True

    def down(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            log.warning("%s unreachable (%s); keeping events and retrying", self.name, exc)

    def recovered(self) -> None:
        if not self.up:
            self.up = True
            log.warning("%s reachable again; catching up", self.name)


@dataclass
class WorkerContext:
    """What the loops of one worker process share."""

    settings: Settings
    queue: Queue
    engine: AsyncEngine
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    redis_state: ServiceState = field(default_factory=lambda: ServiceState("Redis"))
    db_state: ServiceState = field(default_factory=lambda: ServiceState("database"))
    processed: int = 0
    dead_lettered: int = 0
    worker_id: str = "unregistered"
    registration: bytes = b"{}"

    @property
    def keys(self) -> QueueKeys:
        return self.queue.keys

    async def claim(self, inflight: str, queue: Queue | None = None) -> list[bytes]:
        """The in-flight list (of ``queue``'s shard, default shard 0), sealed with a batch
        marker (last) if it had none."""
        return await (queue or self.queue).claim(inflight, self.worker_id, self.registration)


def backoff_delay(attempt: int, cap: float = 5.0) -> float:
    """Capped exponential backoff with jitter (0.1 s, 0.2 s, ... up to ``cap``)."""
    return float(min(cap, 0.1 * 2 ** min(attempt, 16)) * (0.5 + random.random() / 2))


async def retry_forever(
    call: Callable[[], Awaitable[T]],
    state: ServiceState,
    transient: Callable[[BaseException], bool],
) -> T:
    """Run ``call`` until it succeeds, backing off on transient errors only.

    Used for every step that must eventually happen for an event already taken
    from the queue (store, acknowledge): giving up would lose or stall it. Shutdown
    does not interrupt it; the worker's grace period does, by cancelling the task,
    which leaves the batch in Redis for the next worker.
    """
    attempt = 0
    while True:
        try:
            result = await call()
        except Exception as exc:
            if not transient(exc):
                raise
            state.down(exc)
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1
            continue
        state.recovered()
        return result


def _redis_transient(exc: BaseException) -> bool:
    return isinstance(exc, (RedisError, OSError, ConnectionError, TimeoutError))


def dead_letter_entry(raw: bytes, reason: str, batch_id: str) -> bytes:
    """A dead letter: the message as received, why it was refused and when."""
    entry: dict[str, str] = {
        "reason": reason,
        "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "batch_id": batch_id,
    }
    try:
        entry["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        entry["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return orjson.dumps(entry)


class BatchProcessor:
    """Stores the contents of one in-flight list and acknowledges it."""

    def __init__(self, ctx: WorkerContext, inflight_key: str, queue: Queue | None = None) -> None:
        self.ctx = ctx
        self.inflight = inflight_key
        self.queue = queue or ctx.queue  # the shard the in-flight list belongs to

    async def process(self, marker: bytes, raws: list[bytes]) -> None:
        """Store the events among ``raws``, dead-letter the rest, then acknowledge.

        Safe to call again for the same marker after a crash: the ledger makes the
        insert a no-op and the acknowledgement checks the marker.
        """
        ctx = self.ctx
        started = time.perf_counter()
        batch_id = batch_id_of(marker) or "unknown"
        ours = await retry_forever(
            lambda: self.queue.confirm(self.inflight, marker), ctx.redis_state, _redis_transient
        )
        if not ours:
            log.warning(
                "batch %s was adopted before it was stored; the adopter stores it", batch_id
            )
            return
        good: list[Event] = []
        dead: list[bytes] = []
        # Every message leaves the in-flight list stored or dead-lettered: none is pending.
        sites: Counter[str] = Counter()
        for raw in raws:
            try:
                good.append(decode_wire(raw))
                sites[good[-1].site_id] += 1
            except InvalidEvent as exc:
                log.warning("poison message moved to dead letters: %s: %r", exc, raw[:200])
                dead.append(dead_letter_entry(raw, str(exc), batch_id))
                if site := site_of(raw):
                    sites[site] += 1
        poison = len(dead)
        try:
            if good:  # a batch of only poison (or only a marker) has nothing to store
                await retry_forever(
                    lambda: write_batch_bounded(ctx.engine, batch_id, good),
                    ctx.db_state,
                    is_transient,
                )
        except REFUSALS as exc:
            log.error(
                "batch %s refused by the database (%s); storing event by event", batch_id, exc
            )
            dead.extend(await self._write_one_by_one(batch_id, good, raws))

        async def acknowledge() -> None:
            await self.queue.finish(self.inflight, marker, dead, sites)

        await retry_forever(acknowledge, ctx.redis_state, _redis_transient)
        ctx.processed += len(good)
        ctx.dead_lettered += len(dead)
        metrics.STORED.inc(len(good) - (len(dead) - poison))  # less those the database refused
        metrics.DEAD_LETTERED.inc(len(dead))
        metrics.BATCH_EVENTS.observe(len(raws))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _write_one_by_one(
        self, batch_id: str, good: list[Event], raws: list[bytes]
    ) -> list[bytes]:
        """Fallback when the database refuses a batch: isolate the event it refuses.

        Each event gets its own ledger id (``<batch>-<n>``), so this too is safe to
        replay; events the database refuses become dead letters with its reason.
        """
        dead: list[bytes] = []
        for n, event in enumerate(good):
            sub_id = f"{batch_id}-{n}"

            async def write_one(e: Event = event, s: str = sub_id) -> bool:
                return await write_batch_bounded(self.ctx.engine, s, [e])

            try:
                await retry_forever(write_one, self.ctx.db_state, is_transient)
            except REFUSALS as exc:
                reason = f"refused by the database: {describe(exc, 470)}"
                dead.append(dead_letter_entry(event.to_wire(), reason, sub_id))
        return dead


class Consumer:
    """A loop that fills its own in-flight list from one shard, batch after batch.

    A worker runs one per shard per ``WORKER_CONCURRENCY`` slot: each blocks on its own
    shard alone, so no shard waits behind another's timeouts and none is left unserved
    while any worker lives.
    """

    def __init__(self, ctx: WorkerContext, consumer_id: str, queue: Queue | None = None) -> None:
        self.ctx = ctx
        self.queue = queue or ctx.queue
        self.consumer_id = consumer_id
        self.inflight = self.queue.keys.inflight(consumer_id)
        self.processor = BatchProcessor(ctx, self.inflight, self.queue)

    async def run(self) -> None:
        while not self.ctx.stopping.is_set():
            try:
                await self.run_once()
            except (RedisError, OSError) as exc:
                self.ctx.redis_state.down(exc)
                await asyncio.sleep(backoff_delay(2))

    async def run_once(self) -> None:
        """Take one batch (waiting for its first event) and store it.

        A batch is exactly what its in-flight list holds under its marker. Two races
        with a janitor that adopts our list because our heartbeat lapsed (a long pause:
        we are alive, it cannot know) are closed here; each used to count events twice:

        - the list is claimed (read, and sealed with a marker if it has none) in one
          script, not read and then marked, so an adopter and we never store the same
          leftover under two batch ids;
        - after the last move we check that the list still ends with our marker. If it
          was adopted meanwhile, the adopter stores what it took, and what we moved
          afterwards sits in a new list under our key: the next round claims it as a
          leftover, instead of storing it now under the adopted batch's id and again later.
        """
        ctx, queue = self.ctx, self.queue
        claimed = await ctx.claim(self.inflight, queue)
        # Our own list from an interrupted attempt (e.g. Redis went away mid-batch),
        # events moved after an adoption, or nothing but the new marker.
        marker, pending = claimed[-1], claimed[:-1]
        if pending:
            await self.processor.process(marker, list(reversed(pending)))
            return
        first = None
        while first is None:
            if ctx.stopping.is_set():
                await queue.delete(self.inflight)
                return
            first = await queue.blmove(self.inflight, 1)
        ctx.redis_state.recovered()
        raws: list[bytes] = [first]
        size = ctx.settings.batch_size
        deadline = time.monotonic() + ctx.settings.flush_interval_ms / 1000
        while len(raws) < size and not ctx.stopping.is_set():
            moved = await queue.move(
                self.inflight, size - len(raws), ctx.worker_id, ctx.registration
            )
            raws.extend(moved)
            remaining = deadline - time.monotonic()
            if len(raws) >= size or remaining <= 0:
                break
            if not moved:
                item = await queue.blmove(self.inflight, max(remaining, 0.01))
                if item is None:
                    break
                raws.append(item)
        if await queue.tail(self.inflight) != marker:
            log.warning(
                "batch %s was adopted by another worker while being filled (our heartbeat "
                "lapsed); the adopter stores it, the events moved since are taken again",
                batch_id_of(marker),
            )
            return
        await self.processor.process(marker, raws)
