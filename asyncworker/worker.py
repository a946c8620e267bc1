"""The worker daemon: consumer loops, heartbeat, janitor, and two-phase shutdown.

Shaped after arq's ``worker.py``: a fixed number of concurrent loops in one
asyncio process on uvloop; a heartbeat key with a TTL that others read to know we
are alive (and that ``analytics worker --check`` reads for process managers); a
first SIGINT/SIGTERM stops taking new events and lets batches in flight finish
within a grace period, a second one (or the end of the grace) stops at once,
leaving unfinished batches in Redis where the next worker adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from wsgiref.simple_server import WSGIServer

import orjson
from redis.exceptions import RedisError
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from asyncworker.consumer import (
    BatchProcessor,
    Consumer,
    WorkerContext,
    backoff_delay,
)
from asyncworker.keys import batch_id_of
from asyncworker.metrics import start_metrics_server
from asyncworker.queue import AdoptResult, Queue
from asyncworker.writer import prune_ledger
from db import rollups
from db.engine import create_engine
from db.errors import describe
from db.models import metadata
from db.settings import Settings

log = logging.getLogger("asyncworker")

STARTED_LINE = "Worker started and connected successfully!"
JANITOR_CONSUMER = "janitor"


class StartupError(Exception):
    """The worker cannot run with this configuration (reported as one line)."""


# MySQL errors that no retry will cure: wrong credentials, unknown database.
FATAL_MYSQL_ERRORS = {1044: "access denied", 1045: "access denied", 1049: "unknown database"}


async def _check_database(engine: AsyncEngine) -> None:
    """Reachable, and holding every table the writer touches (the schema is migrated)."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    except DBAPIError as exc:
        code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
        if code in FATAL_MYSQL_ERRORS:
            raise StartupError(f"database {FATAL_MYSQL_ERRORS[code]}: {exc.orig}") from None
        raise
    missing = sorted(set(metadata.tables) - tables)
    if missing:
        raise StartupError(
            f"the database lacks tables {', '.join(missing)}: run `analytics init-db` first"
        )


async def connect_with_retry(
    queue: Queue, engine: AsyncEngine, stopping: asyncio.Event, max_delay: float = 10.0
) -> bool:
    """Wait for Redis and the database, backing off (capped); False if asked to stop."""
    attempt = 0
    reported: str | None = None
    while not stopping.is_set():
        try:
            await queue.ping()
            await _check_database(engine)
            return True
        except StartupError:
            raise
        except Exception as exc:
            what = describe(exc)
            if what != reported:
                log.warning("waiting for Redis and the database (%s); retrying", what)
                reported = what
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff_delay(attempt, max_delay))
            attempt += 1
    return False


class Worker:
    """One worker process: ``concurrency`` consumers plus heartbeat and janitor tasks."""

    def __init__(self, settings: Settings, queue: Queue, engine: AsyncEngine) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.ctx = WorkerContext(settings, queue, engine)
        self.consumer_ids = [f"{self.worker_id}:{n}" for n in range(settings.worker_concurrency)]
        self.janitor_id = f"{self.worker_id}:{JANITOR_CONSUMER}"
        self.heartbeat_key = self.ctx.keys.heartbeat(self.worker_id)
        self.info = orjson.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.time(),
                "consumers": [*self.consumer_ids, self.janitor_id],
            }
        )
        self.ctx.worker_id, self.ctx.registration = self.worker_id, self.info

    async def beat(self) -> None:
        """Refresh the heartbeat and, in the same transaction, our registration if it is gone.

        A janitor that finds our heartbeat expired and none of our lists drops our entry.
        If we were only paused (a stalled loop, a Redis blip), a beat that refreshed the
        heartbeat alone would leave us unregistered for good, and should we die later
        nobody would adopt our in-flight lists: their events would stay there forever.
        """
        ttl_ms = int(self.settings.heartbeat_ttl_s * 1000)
        payload = orjson.dumps({"at": time.time(), "processed": self.ctx.processed})
        # Per shard: a janitor checks a heartbeat in the slot of the lists it adopts.
        for queue in self.ctx.queue.shards():
            await queue.beat(self.worker_id, self.info, payload, ttl_ms)

    async def register(self) -> None:
        """Heartbeat and registration at once: a registered worker is never seen as dead."""
        await self.beat()

    async def heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                self.ctx.redis_state.down(exc)

    async def janitor_loop(self) -> None:
        """Adopt the batches of dead workers, and keep the batch ledger short."""
        interval = max(self.settings.heartbeat_ttl_s / 2, 0.5)
        last_prune = 0.0
        while not self.ctx.stopping.is_set():
            try:
                await self.adopt_orphans()
                if time.monotonic() - last_prune > 600:
                    await self.prune()
                    last_prune = time.monotonic()
            except (RedisError, OSError) as exc:
                self.ctx.redis_state.down(exc)
            except Exception:
                log.exception("janitor pass failed; will try again")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ctx.stopping.wait(), interval)

    async def adopt_orphans(self) -> int:
        """Finish every batch left by a worker whose heartbeat expired, on every shard;
        returns batches adopted."""
        adopted = 0
        for queue in self.ctx.queue.shards():
            adopted += await self._adopt_orphans_of(queue)
        return adopted

    async def _adopt_orphans_of(self, queue: Queue) -> int:
        keys = queue.keys
        mine = keys.inflight(self.janitor_id)
        processor = BatchProcessor(self.ctx, mine, queue)
        adopted = 0
        for wid, info in (await queue.registered()).items():
            if wid == self.worker_id or await queue.alive(wid):
                continue
            hb = keys.heartbeat(wid)
            for consumer_id in info.get("consumers", []):
                orphan = keys.inflight(consumer_id)
                result = await queue.adopt(orphan, hb, mine)
                if result is AdoptResult.OWNER_ALIVE:
                    break  # it came back to life
                if result is AdoptResult.ADOPTER_BUSY:
                    await self._finish_own_list(processor, mine)
                    result = await queue.adopt(orphan, hb, mine)
                if result is AdoptResult.ADOPTED:
                    adopted += 1
                    log.warning("adopting the unfinished batch of dead consumer %s", consumer_id)
                    await self._finish_own_list(processor, mine)
            else:
                await queue.forget(wid, info.get("consumers", []))
        return adopted

    async def _finish_own_list(self, processor: BatchProcessor, key: str) -> None:
        if not await processor.queue.exists(key):
            return
        # Claimed in one step, as Consumer.run_once does: our own list can be adopted too.
        items = await self.ctx.claim(key, processor.queue)
        marker, pending = items[-1], items[:-1]
        await processor.process(marker, list(reversed(pending)))

    async def prune(self) -> None:
        live: set[str] = set()
        for queue in self.ctx.queue.shards():
            for info in (await queue.registered()).values():
                for consumer_id in info.get("consumers", []):
                    tail = await queue.tail(queue.keys.inflight(consumer_id))
                    if tail is not None and (bid := batch_id_of(tail)):
                        live.add(bid)
        removed = await prune_ledger(self.ctx.engine, live)
        if removed:
            log.info("pruned %d old batch ids from the ledger", removed)

    async def deregister(self) -> None:
        """Drop the heartbeat at once (so leftovers are adopted now) and the entry if clean."""
        for queue in self.ctx.queue.shards():
            with contextlib.suppress(RedisError, OSError):
                await queue.drop_heartbeat(self.worker_id)
                await queue.forget(self.worker_id, [*self.consumer_ids, self.janitor_id])

    async def run(self) -> int:
        ctx = self.ctx
        await self.register()
        background = [
            asyncio.create_task(self.heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self.janitor_loop(), name="janitor"),
        ]
        consumers = [
            asyncio.create_task(Consumer(ctx, cid, queue).run(), name=f"consumer-{cid}")
            for queue in ctx.queue.shards()
            for cid in self.consumer_ids
        ]
        stop_wait = asyncio.create_task(ctx.stopping.wait())
        await asyncio.wait([*consumers, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in consumers if t.done() and not t.cancelled() and t.exception()]
        for task in crashed:
            log.error("consumer crashed; stopping the worker", exc_info=task.exception())
        ctx.stopping.set()
        grace = self.settings.shutdown_grace_s
        _, pending = await asyncio.wait(consumers, timeout=grace)
        if pending:
            log.warning(
                "grace period over: leaving %d unfinished batches to the next worker", len(pending)
            )
        for task in [*pending, *background]:
            task.cancel()
        await asyncio.gather(*pending, *background, return_exceptions=True)
        await self.deregister()
        log.info("worker stopped: %d events stored this run", ctx.processed)
        # A crashed loop is a bug, not a shutdown: a process manager should see it fail.
        return 1 if crashed else 0


def _serve_metrics(
    settings: Settings, queue: Queue, loop: asyncio.AbstractEventLoop
) -> WSGIServer | None:
    """The metrics server when METRICS_PORT is set; a port we cannot bind stops the start."""
    if not settings.metrics_port:
        return None
    try:
        return start_metrics_server(settings, queue, loop)
    except OSError as exc:
        where = f"{settings.flask_host}:{settings.metrics_port}"
        raise StartupError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from None


def _stop_metrics(server: WSGIServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


async def serve_worker(settings: Settings) -> int:
    """Connect (retrying), run until signalled, and return the exit code."""
    loop = asyncio.get_running_loop()
    queue = Queue.for_worker(settings)
    engine = create_engine(
        settings, pool_size=settings.worker_concurrency * settings.queue_shards + 2
    )
    rollups.configure_cache(engine, settings.rollup_cache_size)
    stopping = asyncio.Event()
    worker: Worker | None = None
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.warning(
                "%s received: finishing batches in flight (up to %.0f s; again to stop now)",
                signal.Signals(signum).name,
                settings.shutdown_grace_s,
            )
            stopping.set()
            if worker is not None:
                worker.ctx.stopping.set()
        else:
            log.warning("stopping now; unfinished batches stay in Redis for the next worker")
            for task in asyncio.all_tasks(loop):
                if task is not asyncio.current_task(loop) and task.get_name().startswith(
                    "consumer"
                ):
                    task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    metrics_server = None
    try:
        # Before waiting for the services, so an outage at start shows in the metrics.
        metrics_server = _serve_metrics(settings, queue, loop)
        if not await connect_with_retry(queue, engine, stopping):
            return 0
        worker = Worker(settings, queue, engine)
        worker.ctx.stopping = stopping
        print(STARTED_LINE, flush=True)
        log.info(
            "worker %s: %d consumers on each of %d shard(s) of %r, batches of up to %d every %d ms",
            worker.worker_id,
            settings.worker_concurrency,
            settings.queue_shards,
            settings.queue_name,
            settings.batch_size,
            settings.flush_interval_ms,
        )
        return await worker.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        _stop_metrics(metrics_server)
        await queue.close()
        await engine.dispose()
