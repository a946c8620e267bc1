"""The queue: the one owner of Redis, for the web edge, the worker and the CLI.

Every Redis command of the system goes through :class:`Queue`, on the client that
:mod:`asyncworker.queue.client` builds (one node or a cluster, each role's timeouts)
with the Lua scripts of ``asyncworker/lua/``; keys are named in :mod:`asyncworker.keys`,
results typed in :mod:`asyncworker.queue.results`. Each shard is a Queue of its own.

Reliable consumption (no event lost, none counted twice):

1. A consumer starts a batch by pushing a unique *batch marker* into its own
   in-flight list, then moves events from the queue into that list (BLMOVE, then a
   script that moves up to N at once). Nothing leaves Redis before it is stored.
2. The batch is written to SQL together with a row for the batch id (the marker),
   in one transaction: a replay of the same batch hits that primary key and is a no-op.
3. Only then a script deletes the in-flight list (and records dead letters).

A consumer whose worker's heartbeat has expired is dead: whoever notices first renames
its in-flight list onto its own (atomic: one adopter wins) and finishes that batch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any, cast

import orjson
from redis.asyncio.cluster import RedisCluster

from asyncworker.keys import (
    BATCH_MARKER_PREFIX,
    QueueKeys,
    new_batch_marker,
)
from asyncworker.queue.client import Client, Role, Script, eval_and_wait, make_client
from asyncworker.queue.edge import Arrival, QueueEdge
from asyncworker.queue.extras import QueueExtras
from asyncworker.queue.results import AdoptResult, EnqueueResult, LiveCounts, NotReplicated
from db.settings import Settings

__all__ = [
    "AdoptResult",
    "Arrival",
    "EnqueueResult",
    "LiveCounts",
    "NotReplicated",
    "Queue",
    "Role",
]


class Queue(QueueEdge, QueueExtras):
    """One shard of the queue: its Redis state and every operation on it.

    ``shard(i)`` gives the queue of shard ``i`` on the same client; the web edge's
    :meth:`enqueue_event` picks the shard, and the read-only figures (:meth:`totals`,
    :meth:`live_counts`, :meth:`read_heartbeats`) add up every shard. See the module
    docstring for how a shard's events are consumed exactly once.
    """

    def __init__(self, settings: Settings, client: Client, shard: int = 0) -> None:
        """Wrap ``client`` (tests pass an instrumented one; code uses the ``for_*`` builders)."""
        self.settings = settings
        self.redis = client
        self.keys = QueueKeys(settings.queue_name, shard)
        self._shards: dict[int, Queue] = {shard: self}
        self._round_robin = itertools.count()
        self._salts: dict[str, tuple[bytes | None, float]] = {}
        self._coalescer = None

    def shard(self, index: int) -> Queue:
        """The queue of shard ``index`` on this client (views share one cache of them)."""
        found = self._shards.get(index)
        if found is None:
            found = Queue(self.settings, self.redis, index)
            found._shards = self._shards
            self._shards[index] = found
        return found

    def shards(self) -> list[Queue]:
        """Every shard of ``QUEUE_SHARDS``, in order (shard 0 holds today's keys)."""
        return [self.shard(i) for i in range(self.settings.queue_shards)]

    @classmethod
    def for_role(cls, settings: Settings, role: Role) -> Queue:
        """A queue on a new client with ``role``'s timeouts; close it with :meth:`close`."""
        return cls(settings, make_client(settings, role))

    @classmethod
    def for_web(cls, settings: Settings) -> Queue:
        """The web edge's queue: fails fast so POST /event answers 503 rather than hangs."""
        return cls.for_role(settings, Role.WEB)

    @classmethod
    def for_worker(cls, settings: Settings) -> Queue:
        """The worker's queue: its socket timeout outlasts the blocking BLMOVE."""
        return cls.for_role(settings, Role.WORKER)

    @classmethod
    def for_cli(cls, settings: Settings) -> Queue:
        """The maintenance commands' queue (``analytics dead-letters``)."""
        return cls.for_role(settings, Role.CLI)

    async def close(self) -> None:
        """Close the client and its pool; the queue is unusable afterwards."""
        await self.redis.aclose()

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def warm_up(self) -> None:
        """Learn a cluster's topology now, before concurrent use (no-op on one node).

        A cluster client that learns it on first use lets concurrent first commands
        tear down each other's connections (redis-py 8.1): a burst of 503s at start.
        """
        if isinstance(self.redis, RedisCluster):
            await self.redis.initialize()

    async def ping(self) -> None:
        """Raise unless Redis answers (the worker waits for this before it starts)."""
        await self.warm_up()
        await self.redis.ping()

    async def length(self) -> int:
        """Events waiting in the queue (for /readyz; the cap is MAX_QUEUE_LENGTH)."""
        return int(await self.redis.llen(self.keys.queue))

    async def dead_letter_count(self) -> int:
        """Messages the worker refused, waiting for an operator (for /readyz)."""
        return int(await self.redis.llen(self.keys.dead))

    async def totals(self) -> tuple[int, int]:
        """Events waiting and dead letters, summed over every shard (for /readyz)."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in self.shards():
            pipe.llen(queue.keys.queue)
            pipe.llen(queue.keys.dead)
        lengths = [int(n) for n in await pipe.execute()]
        return sum(lengths[0::2]), sum(lengths[1::2])

    async def live_counts(self, minutes: int, site_id: str | None) -> LiveCounts:
        """Events accepted in the last ``minutes`` (one site or all) and the queue's length,
        over every shard, from the per-minute counters the enqueue script keeps (one round
        trip on a single node; a non-transactional pipeline may span slots on a cluster)."""
        minute = int(time.time() // 60)
        pipe = self.redis.pipeline(transaction=False)
        shards = self.shards()
        for keys in (q.keys for q in shards):
            for m in range(minute - minutes + 1, minute + 1):
                if site_id is None:
                    pipe.hvals(keys.received(m))
                else:
                    pipe.hget(keys.received(m), site_id)
        for queue in shards:
            pipe.llen(queue.keys.queue)
        results = await pipe.execute()
        buckets, lengths = results[: -len(shards)], results[-len(shards) :]
        if site_id is None:
            received = sum(int(v) for vals in buckets for v in vals)
        else:
            received = sum(int(v) for v in buckets if v is not None)
        return LiveCounts(received, sum(int(n) for n in lengths))

    # ------------------------------------------------------------ consumers

    _claim = Script("claim")

    async def claim(self, inflight: str, worker_id: str, registration: bytes) -> list[bytes]:
        """The in-flight list, sealed with a batch marker (last) if it had none.

        KEYS: the in-flight list, the workers hash. Registers the worker again if a
        janitor dropped it, so the list stays findable.
        """
        found = await self._claim(
            keys=[inflight, self.keys.workers],
            args=[new_batch_marker(), worker_id, registration, BATCH_MARKER_PREFIX],
        )
        return cast("list[bytes]", found)

    _move = Script("move")

    async def move(
        self, inflight: str, count: int, worker_id: str, registration: bytes
    ) -> list[bytes]:
        """Up to ``count`` events moved from the queue into ``inflight``, oldest first.

        KEYS: the queue, the in-flight list, the workers hash (re-registered, as claim).
        """
        moved = await self._move(
            keys=[self.keys.queue, inflight, self.keys.workers],
            args=[count, worker_id, registration],
        )
        return cast("list[bytes]", moved)

    async def blmove(self, inflight: str, timeout: float) -> bytes | None:
        """The oldest event moved into ``inflight``, waiting up to ``timeout`` s for one."""
        # Redis >= 6 takes fractional timeouts; redis-py's hint says int.
        wait = cast(int, timeout)
        item = await self.redis.blmove(self.keys.queue, inflight, wait, "RIGHT", "LEFT")
        return cast("bytes | None", item)

    _finish = Script("finish")

    async def finish(
        self,
        inflight: str,
        marker: bytes,
        dead_letters: list[bytes],
        sites: Mapping[str, int] | None = None,
    ) -> bool:
        """Acknowledge a stored batch; False (nothing done) if the list was adopted.

        ``sites``: how many of the batch's messages each site had (stored or dead-lettered),
        counted down from its pending events in the same step.
        KEYS: the in-flight list, the dead-letter list, the pending counts.
        """
        counts = [x for site, n in (sites or {}).items() for x in (site, n)]
        done = await self._finish(
            keys=[inflight, self.keys.dead, self.keys.pending],
            args=[marker, len(dead_letters), *dead_letters, *counts],
        )
        return int(done) == 1

    async def pending_events(self, site_id: str) -> int:
        """Events of ``site_id`` queued or in flight, summed over every shard."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in self.shards():
            pipe.hget(queue.keys.pending, site_id)
        return sum(int(n or 0) for n in await pipe.execute())

    async def confirm(self, inflight: str, marker: bytes) -> bool:
        """With ``REDIS_WAIT_REPLICAS``: False if the list no longer ends with ``marker``
        (adopted), True once its moves are on enough replicas, else NotReplicated.

        A batch is stored only after this, so a failover cannot hand a promoted replica
        events that are still in its queue but already stored under this batch's id.
        """
        replicas = self.settings.redis_wait_replicas
        if replicas == 0:
            return True
        done, acked = await eval_and_wait(self.redis, "confirm", [inflight], [marker], replicas)
        if int(done) == 0:
            return False
        if acked < replicas:
            raise NotReplicated(f"{acked} of {replicas} replicas acknowledged batch {marker!r}")
        return True

    async def tail(self, inflight: str) -> bytes | None:
        """The last item of a list: the marker of the batch it holds, if sealed."""
        return cast("bytes | None", await self.redis.lindex(inflight, -1))

    async def exists(self, key: str) -> bool:
        """Whether an in-flight list holds anything (an empty list does not exist)."""
        return bool(await self.redis.exists(key))

    async def delete(self, key: str) -> None:
        """Drop an in-flight list that holds nothing but its marker (on shutdown)."""
        await self.redis.delete(key)

    # ------------------------------------------------------------ workers and janitors

    _beat = Script("beat")

    async def beat(self, worker_id: str, registration: bytes, payload: bytes, ttl_ms: int) -> None:
        """Refresh a heartbeat and, in the same step, the registration if it is gone.

        KEYS: the heartbeat, the workers hash (a script: one slot, atomic on a cluster too).
        """
        keys = [self.keys.heartbeat(worker_id), self.keys.workers]
        await self._beat(keys=keys, args=[payload, ttl_ms, worker_id, registration])

    async def drop_heartbeat(self, worker_id: str) -> None:
        """Declare a stopping worker dead at once, so its leftovers are adopted now."""
        await self.redis.delete(self.keys.heartbeat(worker_id))

    async def alive(self, worker_id: str) -> bool:
        """Whether a worker's heartbeat has not yet expired."""
        return bool(await self.redis.exists(self.keys.heartbeat(worker_id)))

    async def registered(self) -> dict[str, dict[str, Any]]:
        """Every registered worker and its registration (consumers, pid, host)."""
        raw = await self.redis.hgetall(self.keys.workers)
        out: dict[str, dict[str, Any]] = {}
        for wid, info in cast("dict[bytes, bytes]", raw).items():
            try:
                out[wid.decode()] = orjson.loads(info)
            except orjson.JSONDecodeError:
                out[wid.decode()] = {"consumers": []}
        return out

    _adopt = Script("adopt")

    async def adopt(self, orphan: str, heartbeat: str, mine: str) -> AdoptResult:
        """Rename a dead consumer's list onto ours, unless its owner lives or ours exists.

        KEYS: the orphan in-flight list, its worker's heartbeat, the adopter's list.
        """
        return AdoptResult(int(await self._adopt(keys=[orphan, heartbeat, mine])))

    _forget = Script("forget")

    async def forget(self, worker_id: str, consumers: list[str]) -> bool:
        """Unregister a worker that is silent and owns no list (checked atomically).

        KEYS: the workers hash, the worker's heartbeat, then every in-flight list of it.
        """
        lists = [self.keys.inflight(c) for c in consumers]
        keys = [self.keys.workers, self.keys.heartbeat(worker_id), *lists]
        return int(await self._forget(keys=keys, args=[worker_id])) == 1

    async def read_heartbeats(self) -> dict[str, Any]:
        """Live workers and the age of the oldest heartbeat (for --check, /readyz, /live).

        Ages come from the keys' remaining TTL, so no clocks need to agree. A worker beats
        on every shard it serves; it counts once, alive if any of its heartbeats is.
        """
        ttl = self.settings.heartbeat_ttl_s
        registered: set[bytes] = set()
        ages: dict[bytes, float] = {}
        for queue in self.shards():
            workers = cast("dict[bytes, bytes]", await self.redis.hgetall(queue.keys.workers))
            registered.update(workers)
            for wid in workers:
                remaining = await self.redis.pttl(queue.keys.heartbeat(wid.decode()))
                if remaining is not None and remaining > 0:
                    ages[wid] = min(ages.get(wid, ttl), max(0.0, ttl - remaining / 1000))
        return {
            "workers": len(ages),
            "registered": len(registered),
            "oldest_heartbeat_age_s": round(max(ages.values()), 3) if ages else None,
            "alive": bool(ages),
        }
