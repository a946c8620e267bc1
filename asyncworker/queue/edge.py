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

import itertools
import secrets
import time
from collections.abc import Mapping
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


class QueueEdge:
    """Enqueueing at the web edge and the visitor salts."""

    redis: Client
    keys: QueueKeys
    settings: Settings
    _round_robin: itertools.count[int]
    _salts: dict[str, tuple[bytes | None, float]]

    def shard(self, index: int) -> Queue:
        raise NotImplementedError

    _enqueue = Script("enqueue")

    async def enqueue_event(self, event: Event, arrival: Arrival | None) -> EnqueueResult:
        """Queue an event on its visitor's shard (see :meth:`shard_for`), sessionized when
        ``arrival`` is given (bots' events are queued without a visit).

        With ``QUEUE_SHARDS_PREVIOUS`` (for a day after a shard change) an event_id seen
        on the shard the previous count gave is a DUPLICATE too, so a retry of an event
        first sent before the change is not stored twice.
        """
        site_id, event_id = event.site_id, event.event_id
        key = arrival.shard_key if arrival is not None else event.user_id
        queue = self.shard(self.shard_for(site_id, key, event_id))
        previous = self.settings.queue_shards_previous
        with resets_as_errors(self.redis):
            if event_id is not None and previous:
                old = self.shard(self.shard_for(site_id, key, event_id, previous))
                if old is not queue and await self.redis.exists(old.keys.seen(site_id, event_id)):
                    return EnqueueResult.DUPLICATE
            return await queue.enqueue(event, arrival)

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

    def _visit_args(self, event: Event, arrival: Arrival) -> tuple[list[str], list[Any]]:
        """The sessionizing KEYS and ARGV of the enqueue script (see its header)."""
        keys = self.keys
        today = keys.visit(event.site_id, arrival.visitor)
        earlier = arrival.earlier_visitor
        earlier_key = keys.visit(event.site_id, earlier) if earlier else today
        pageview = event.event_type == "pageview" and event.path is not None
        args = [
            to_us(event.timestamp),
            arrival.visitor,
            secrets.randbelow(VISIT_ID_MAX) + 1,
            orjson.dumps(dict(arrival.dims)),
            "p" + event.path if pageview and event.path is not None else "",
            VISIT_GAP_S * _US,
            VISIT_STATE_TTL_S * 1000,
        ]
        return [today, earlier_key], args

    async def enqueue(self, event: Event, arrival: Arrival | None) -> EnqueueResult:
        """Queue one event on this shard (KEYS: queue, the event_id's seen key, this
        minute's counter, and with ``arrival`` the visitor's visit states).

        A repeated ``site_id`` + ``event_id`` within a day is a DUPLICATE (answered as
        accepted, counted once); past ``MAX_QUEUE_LENGTH`` (per shard) nothing is pushed.
        With ``REDIS_WAIT_REPLICAS`` the enqueue is followed by WAIT on its connection.
        """
        keys, site_id, event_id = self.keys, event.site_id, event.event_id
        payload = orjson.dumps(event.wire_body())
        # Without an event_id the script ignores its dedupe key; any name in the slot will do.
        seen = keys.seen(site_id, event_id) if event_id else keys.workers
        key_names = [keys.queue, seen, keys.received(int(time.time() // 60))]
        replicas = self.settings.redis_wait_replicas
        args: list[Any] = [
            payload,
            self.settings.max_queue_length,
            site_id,
            "1" if event_id else "0",
            EVENT_ID_TTL_S,
            RECEIVED_BUCKET_TTL_S,
            "1" if replicas else "0",
        ]
        if arrival is not None:
            args[0] = payload[:-1]  # the script appends the visit and the closing brace
            visit_keys, visit_args = self._visit_args(event, arrival)
            key_names += visit_keys
            args += visit_args
        if replicas == 0:
            return EnqueueResult(int(await self._enqueue(keys=key_names, args=args)))
        raw, acked = await eval_and_wait(self.redis, "enqueue", key_names, args, replicas)
        result = EnqueueResult(int(raw))
        # A duplicate's script rewrote its dedupe key, so WAIT covers the original too.
        if result is not EnqueueResult.QUEUE_FULL and acked < replicas:
            return EnqueueResult.UNREPLICATED
        return result

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
