"""The queue: the one owner of Redis, for the web edge, the worker and the CLI.

Every Redis command of the system goes through :class:`Queue`: it builds the client
(one factory, with each role's timeouts), registers the Lua scripts of
``asyncworker/lua/`` once per client (calls go out as EVALSHA), names the keys
(:mod:`asyncworker.keys`) and turns the scripts' return codes into typed results.

Reliable consumption (no event lost, none counted twice):

1. A consumer starts a batch by pushing a unique *batch marker* into its own
   in-flight list, then moves events from the queue into that list (BLMOVE, then a
   script that moves up to N at once). Nothing leaves Redis before it is stored.
2. The batch is written to SQL together with a row for the batch id (the marker),
   in one transaction: a replay of the same batch hits that primary key and is a no-op.
3. Only then a script deletes the in-flight list (and records dead letters).

A consumer whose worker's heartbeat key has expired is dead: whoever notices first
renames its in-flight list onto its own (atomic, so only one adopter wins) and
finishes that batch, skipping the insert if the batch id is already in SQL.
"""

from __future__ import annotations

import enum
import functools
import time
from importlib import resources
from typing import Any, NamedTuple, cast

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript

from asyncworker.keys import (
    BATCH_MARKER_PREFIX,
    EVENT_ID_TTL_S,
    RECEIVED_BUCKET_TTL_S,
    QueueKeys,
    new_batch_marker,
)
from db.settings import Settings


class Role(enum.Enum):
    """Who talks to Redis, which decides the client's timeouts."""

    WEB = "web"
    WORKER = "worker"
    CLI = "cli"
    CHECK = "check"


class EnqueueResult(enum.Enum):
    """What the enqueue script did; a DUPLICATE is answered as accepted, a full queue 503."""

    ACCEPTED = 1
    DUPLICATE = 0
    QUEUE_FULL = -1


class AdoptResult(enum.Enum):
    """What the adopt script did; the janitor stops, retries or finishes accordingly."""

    ADOPTED = 1
    NOTHING = 0
    OWNER_ALIVE = -1
    ADOPTER_BUSY = -2


class LiveCounts(NamedTuple):
    """The live panel's numbers, read in one round trip."""

    received: int
    queue_length: int


def make_client(settings: Settings, role: Role) -> Redis:
    """The one place a Redis client is built (a cluster client will be chosen here too).

    The web edge fails fast (POST /event answers 503 rather than hang with Redis away)
    and lets a burst above its pool wait up to 2 s for a connection instead of failing
    at once. The worker's socket timeout stays above its 1 s blocking BLMOVE. The CLI
    tools wait a little longer than the web; ``worker --check`` answers within seconds.
    """
    if role is Role.WEB:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=256,
            timeout=2,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
        )
        return Redis.from_pool(pool)
    if role is Role.CLI:
        return Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=3,
        socket_timeout=3 if role is Role.CHECK else 10,
        health_check_interval=30,
    )


@functools.cache
def lua(name: str) -> str:
    """The source of ``asyncworker/lua/<name>.lua`` (shipped as package data)."""
    return (resources.files("asyncworker") / "lua" / f"{name}.lua").read_text("utf-8")


class Script:
    """A Lua file registered once per queue (so per client), declared beside its accessor.

    redis-py's :class:`AsyncScript` sends EVALSHA, loading the script only when Redis
    does not know it (first use, after a restart or a SCRIPT FLUSH), so the source
    crosses the network once rather than with every call.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.attr = f"_script_{name}"

    def __get__(self, queue: Queue, owner: type[Queue]) -> AsyncScript:
        script: AsyncScript | None = queue.__dict__.get(self.attr)
        if script is None:
            script = queue.redis.register_script(lua(self.name))
            queue.__dict__[self.attr] = script
        return script


class Queue:
    """One queue's Redis state and every operation on it; see the module docstring."""

    def __init__(self, settings: Settings, client: Redis) -> None:
        """Wrap ``client`` (tests pass an instrumented one; code uses the ``for_*`` builders)."""
        self.settings = settings
        self.redis = client
        self.keys = QueueKeys(settings.queue_name)

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

    async def ping(self) -> None:
        """Raise unless Redis answers (the worker waits for this before it starts)."""
        await self.redis.ping()

    # ------------------------------------------------------------ web edge

    _enqueue = Script("enqueue")

    async def enqueue(self, payload: bytes, site_id: str, event_id: str | None) -> EnqueueResult:
        """Queue one event (KEYS: queue, the event_id's seen key, this minute's counter).

        A repeated ``site_id`` + ``event_id`` within a day is a DUPLICATE (answered as
        accepted, counted once); past ``MAX_QUEUE_LENGTH`` nothing is pushed.
        """
        keys = self.keys
        # Without an event_id the script ignores its dedupe key; any name in the slot will do.
        seen = keys.seen(site_id, event_id) if event_id else keys.workers
        args = (
            payload,
            self.settings.max_queue_length,
            site_id,
            "1" if event_id else "0",
            EVENT_ID_TTL_S,
            RECEIVED_BUCKET_TTL_S,
        )
        key_names = [keys.queue, seen, keys.received(int(time.time() // 60))]
        return EnqueueResult(int(await self._enqueue(keys=key_names, args=args)))

    # ------------------------------------------------------------ sign-in throttling

    _fail = Script("fail")

    async def count_failure(self, counters: list[str], window_s: int) -> int:
        """Count a failed sign-in on each counter (:meth:`QueueKeys.login_failures` names);
        the highest count."""
        return int(await self._fail(keys=counters, args=(window_s,)))

    async def failures(self, counters: list[str]) -> tuple[int, int]:
        """The highest count among ``counters`` and the seconds until that one expires."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in counters:
                pipe.get(name)
                pipe.ttl(name)
            answers = await pipe.execute()
        pairs = [(int(answers[i] or 0), int(answers[i + 1])) for i in range(0, len(answers), 2)]
        count, ttl = max(pairs, default=(0, 0))
        return count, max(ttl, 1) if count else 0

    async def length(self) -> int:
        """Events waiting in the queue (for /readyz; the cap is MAX_QUEUE_LENGTH)."""
        return int(await self.redis.llen(self.keys.queue))

    async def dead_letter_count(self) -> int:
        """Messages the worker refused, waiting for an operator (for /readyz)."""
        return int(await self.redis.llen(self.keys.dead))

    async def live_counts(self, minutes: int, site_id: str | None) -> LiveCounts:
        """Events accepted in the last ``minutes`` (one site or all) and the queue's length,
        read in one round trip from the per-minute counters the enqueue script keeps."""
        minute = int(time.time() // 60)
        pipe = self.redis.pipeline(transaction=False)
        for m in range(minute - minutes + 1, minute + 1):
            if site_id is None:
                pipe.hvals(self.keys.received(m))
            else:
                pipe.hget(self.keys.received(m), site_id)
        pipe.llen(self.keys.queue)
        *buckets, queue_length = await pipe.execute()
        if site_id is None:
            received = sum(int(v) for vals in buckets for v in vals)
        else:
            received = sum(int(v) for v in buckets if v is not None)
        return LiveCounts(received, int(queue_length))

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

    async def finish(self, inflight: str, marker: bytes, dead_letters: list[bytes]) -> bool:
        """Acknowledge a stored batch; False (nothing done) if the list was adopted.

        KEYS: the in-flight list, the dead-letter list.
        """
        done = await self._finish(keys=[inflight, self.keys.dead], args=[marker, *dead_letters])
        return int(done) == 1

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

    async def beat(self, worker_id: str, registration: bytes, payload: bytes, ttl_ms: int) -> None:
        """Refresh a heartbeat and, in the same transaction, the registration if it is gone."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.heartbeat(worker_id), payload, px=ttl_ms)
        pipe.hsetnx(self.keys.workers, worker_id, registration)
        await pipe.execute()

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

        Ages come from the keys' remaining TTL, so no clocks need to agree.
        """
        ttl = self.settings.heartbeat_ttl_s
        workers = cast("dict[bytes, bytes]", await self.redis.hgetall(self.keys.workers))
        ages: list[float] = []
        for wid in workers:
            remaining = await self.redis.pttl(self.keys.heartbeat(wid.decode()))
            if remaining is not None and remaining > 0:
                ages.append(max(0.0, ttl - remaining / 1000))
        return {
            "workers": len(ages),
            "registered": len(workers),
            "oldest_heartbeat_age_s": round(max(ages), 3) if ages else None,
            "alive": bool(ages),
        }

    # ------------------------------------------------------------ dead letters

    async def dead_letters(self) -> list[bytes]:
        """Every dead letter, newest first."""
        return cast("list[bytes]", await self.redis.lrange(self.keys.dead, 0, -1))

    _requeue = Script("requeue")

    async def requeue(self, entry: bytes, raw: bytes) -> bool:
        """Move one dead letter back onto the queue; False if it was already gone.

        KEYS: the dead-letter list, the queue. Once, even if two requeues race.
        """
        return (
            int(await self._requeue(keys=[self.keys.dead, self.keys.queue], args=[entry, raw])) == 1
        )

    async def purge(self, entries: list[bytes]) -> int:
        """Delete these dead letters (each once); how many were still there."""
        removed = 0
        for entry in entries:
            removed += int(await self.redis.lrem(self.keys.dead, 1, entry))  # type: ignore[arg-type]
        return removed
