"""The web edge's side of the queue: enqueue one event, sessionized, on its visitor's shard.

Mixed into :class:`asyncworker.queue.Queue`. The enqueue script (``lua/enqueue.lua``)
checks the cap, deduplicates by ``event_id``, advances the visitor's visit and pushes
the event in one step, so a visit never advances for an event that was not queued and
a retried event never advances it twice. A visitor's visit state lives in the hash slot
of the shard its events go to, so the one script touches one slot.

The visitor salts (one random secret per UTC day, kept 48 hours) are created here too:
atomically (``SET NX``), shared by every web process through Redis, and cached in each
process for a minute, so a salt recreated after a Redis flush is adopted everywhere
within that minute.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from asyncworker.keys import (
    EVENT_ID_TTL_S,
    RECEIVED_BUCKET_TTL_S,
    SALT_TTL_S,
    VISIT_GAP_S,
    VISIT_STATE_TTL_S,
    QueueKeys,
    shard_of,
)
from asyncworker.queue.client import Client, Script, eval_and_wait
from asyncworker.queue.client import connection_resets_as_redis_errors as resets_as_errors
from asyncworker.queue.coalesce import Coalescer
from asyncworker.queue.results import EnqueueResult
from db.event import Event
from db.settings import Settings
from db.visit import VISIT_ID_MAX, to_us

if TYPE_CHECKING:
    from asyncworker.queue import Queue

SALT_BYTES = 32
SALT_CACHE_S = 60.0
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the web edge knows of an event's visitor, to sessionize it.

    ``shard_key`` picks the shard (the user_id, or address and User-Agent): it is
    hashed to a shard number and never stored. ``earlier_visitor`` is the visitor's id
    under yesterday's salt, which continues a visit that crosses midnight.
    """

    visitor: str
    earlier_visitor: str | None
    shard_key: str
    dims: Mapping[str, str]


Queued = tuple[Event, Arrival | None]
# Events of one script call at most (a group of concurrent requests, or one shard's part
# of a POST /events body): bounds the script's run time, during which Redis does nothing else.
GROUP_LIMIT = 1000


class QueueEdge:
    """Enqueueing at the web edge and the visitor salts."""

    redis: Client
    keys: QueueKeys
    settings: Settings
    _round_robin: itertools.count[int]
    _salts: dict[str, tuple[bytes | None, float]]
    _coalescer: Coalescer[Queued, EnqueueResult] | None

    def shard(self, index: int) -> Queue:
        raise NotImplementedError

    _enqueue = Script("enqueue")

    async def enqueue_event(self, event: Event, arrival: Arrival | None) -> EnqueueResult:
        """Queue an event on its visitor's shard (see :meth:`shard_for`), sessionized when
        ``arrival`` is given (bots' events are queued without a visit), in one script call
        with whatever other events of this process are waiting for the same shard.

        With ``QUEUE_SHARDS_PREVIOUS`` (for a day after a shard change) an event_id seen
        on the shard the previous count gave is a DUPLICATE too, so a retry of an event
        first sent before the change is not stored twice.
        """
        queue = self._shard_of(event, arrival)
        if await self._seen_before_change(event, arrival, queue):
            return EnqueueResult.DUPLICATE
        coalescer = queue._coalescer
        if coalescer is None:
            coalescer = queue._coalescer = Coalescer(queue.enqueue_group, GROUP_LIMIT)
        return await coalescer.submit((event, arrival))

    async def enqueue_many(self, items: Sequence[Queued]) -> list[EnqueueResult]:
        """Queue a batch (``POST /events``): one script call per shard, all of a shard's
        events or none of them; results in the order of ``items``."""
        results: list[EnqueueResult | None] = [None] * len(items)
        by_shard: dict[int, list[int]] = {}
        for index, (event, arrival) in enumerate(items):
            queue = self._shard_of(event, arrival)
            if await self._seen_before_change(event, arrival, queue):
                results[index] = EnqueueResult.DUPLICATE
            else:
                by_shard.setdefault(queue.keys.shard, []).append(index)

        async def one_shard(shard: int, indexes: list[int]) -> None:
            queue = self.shard(shard)
            found = await queue.enqueue_group([items[i] for i in indexes], all_or_none=True)
            for index, result in zip(indexes, found, strict=True):
                results[index] = result

        await asyncio.gather(*(one_shard(s, found) for s, found in by_shard.items()))
        return [EnqueueResult.DUPLICATE if r is None else r for r in results]

    def _shard_of(self, event: Event, arrival: Arrival | None) -> Queue:
        key = arrival.shard_key if arrival is not None else event.user_id
        return self.shard(self.shard_for(event.site_id, key, event.event_id))

    async def _seen_before_change(
        self, event: Event, arrival: Arrival | None, queue: Queue
    ) -> bool:
        previous, event_id = self.settings.queue_shards_previous, event.event_id
        if event_id is None or not previous:
            return False
        key = arrival.shard_key if arrival is not None else event.user_id
        old = self.shard(self.shard_for(event.site_id, key, event_id, previous))
        if old is queue:
            return False
        with resets_as_errors(self.redis):
            return bool(await self.redis.exists(old.keys.seen(event.site_id, event_id)))

    def shard_for(
        self, site_id: str, visitor_key: str | None, event_id: str | None, shards: int = 0
    ) -> int:
        """The visitor's shard (of ``shards``, default QUEUE_SHARDS); by event_id without a
        visitor (so retries meet their dedupe key), round robin with neither."""
        shards = shards or self.settings.queue_shards
        if visitor_key is not None:
            return shard_of(site_id, visitor_key, shards)
        if event_id is not None:
            return shard_of(site_id, "\0event:" + event_id, shards)
        return next(self._round_robin) % shards

    def _event_args(self, event: Event, arrival: Arrival | None) -> tuple[list[str], list[Any]]:
        """One event's three KEYS and nine ARGV of the enqueue script (see its header)."""
        keys, site_id, event_id = self.keys, event.site_id, event.event_id
        payload = orjson.dumps(event.wire_body())
        # Without an event_id the script ignores its dedupe key; any name in the slot will do.
        seen = keys.seen(site_id, event_id) if event_id else keys.workers
        if arrival is None:
            return [seen, seen, seen], [payload, site_id, "1" if event_id else "0", "0"] + [""] * 5
        today = keys.visit(site_id, arrival.visitor)
        earlier = arrival.earlier_visitor
        earlier_key = keys.visit(site_id, earlier) if earlier else today
        pageview = event.event_type == "pageview" and event.path is not None
        args = [
            payload[:-1],  # the script appends the visit and the closing brace
            site_id,
            "1" if event_id else "0",
            "1",
            to_us(event.timestamp),
            arrival.visitor,
            secrets.randbelow(VISIT_ID_MAX) + 1,
            orjson.dumps(dict(arrival.dims)),
            "p" + event.path if pageview and event.path is not None else "",
        ]
        return [seen, today, earlier_key], args

    async def enqueue(self, event: Event, arrival: Arrival | None) -> EnqueueResult:
        """Queue one event on this shard, now (see :meth:`enqueue_group`)."""
        (result,) = await self.enqueue_group([(event, arrival)])
        return result

    async def enqueue_group(
        self, items: Sequence[Queued], all_or_none: bool = False
    ) -> list[EnqueueResult]:
        """Queue events on this shard in one script call.

        A repeated ``site_id`` + ``event_id`` within a day is a DUPLICATE (answered as
        accepted, counted once). Past ``MAX_QUEUE_LENGTH`` (per shard) an event is
        QUEUE_FULL and nothing is pushed for it; with ``all_or_none`` (one request's
        batch) a group that does not fit is refused whole. With ``REDIS_WAIT_REPLICAS``
        the call is followed by WAIT on its connection.
        """
        replicas = self.settings.redis_wait_replicas
        key_names = [self.keys.queue, self.keys.received(int(time.time() // 60))]
        args: list[Any] = [
            self.settings.max_queue_length,
            EVENT_ID_TTL_S,
            RECEIVED_BUCKET_TTL_S,
            "1" if replicas else "0",
            VISIT_GAP_S * _US,
            VISIT_STATE_TTL_S * 1000,
            "1" if all_or_none else "0",
        ]
        for event, arrival in items:
            event_keys, event_args = self._event_args(event, arrival)
            key_names += event_keys
            args += event_args
        key_names.append(self.keys.pending)
        with resets_as_errors(self.redis):
            if replicas == 0:
                raw = await self._enqueue(keys=key_names, args=args)
            else:
                raw, acked = await eval_and_wait(self.redis, "enqueue", key_names, args, replicas)
        results = [EnqueueResult(int(r)) for r in raw]
        # A duplicate's script rewrote its dedupe key, so WAIT covers the original too.
        if replicas and acked < replicas:
            full = EnqueueResult.QUEUE_FULL
            return [r if r is full else EnqueueResult.UNREPLICATED for r in results]
        return results

    # ------------------------------------------------------------ visitor salts

    async def _salt(self, day: date, create: bool) -> bytes | None:
        name = day.isoformat()
        cached = self._salts.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[1] < SALT_CACHE_S:
            return cached[0]
        key = self.shard(0).keys.salt(name)
        with resets_as_errors(self.redis):
            if create:
                await self.redis.set(key, secrets.token_bytes(SALT_BYTES), nx=True, ex=SALT_TTL_S)
            found = await self.redis.get(key)
        salt = found.encode() if isinstance(found, str) else found
        self._salts[name] = (salt, now)
        return salt

    async def salts(self, today: date) -> tuple[bytes, bytes | None]:
        """Today's visitor salt (created if missing) and yesterday's (None once deleted)."""
        salt = await self._salt(today, create=True)
        if salt is None:  # deleted between SET NX and GET: make another
            self._salts.pop(today.isoformat(), None)
            salt = await self._salt(today, create=True)
        if salt is None:
            raise RuntimeError("the visitor salt could not be stored in Redis")
        return salt, await self._salt(today - timedelta(days=1), create=False)
