"""The queue's figures for Prometheus, read from Redis at scrape time, and who may scrape.

Shared by the web edge's ``/metrics`` and the worker's ``METRICS_PORT``. Nothing here
counts anything (the counters live with the processes that count: webapp.metrics,
asyncworker.metrics), so importing it adds no series to either.

The figures are read when scraped, within :data:`READ_TIMEOUT_S`: a Redis outage turns
them into ``analytics_redis_up 0`` and no queue series, never a failed scrape.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from asyncworker.queue import Queue
from db.event import InvalidEvent, decode_wire
from db.settings import Settings

READ_TIMEOUT_S = 2.0


@dataclass
class QueueFigures:
    """What Redis says about the queue, summed over its consumers."""

    lengths: dict[int, int] = field(default_factory=dict)  # per shard
    dead_letters: int = 0
    inflight_batches: int = 0
    oldest_wait_s: float = 0.0  # age of the oldest queued event, by its timestamp


async def _shard_figures(queue: Queue, figures: QueueFigures, now: float) -> None:
    keys = queue.keys
    redis = queue.redis
    pipe = redis.pipeline(transaction=False)
    pipe.llen(keys.queue)
    pipe.llen(keys.dead)
    pipe.lindex(keys.queue, -1)  # the oldest (events are pushed left, taken right)
    length, dead, oldest = await pipe.execute()
    figures.lengths[keys.shard] = int(length)
    figures.dead_letters += int(dead)
    if oldest is not None:
        try:
            stamp = decode_wire(oldest).timestamp.timestamp()
            figures.oldest_wait_s = max(figures.oldest_wait_s, now - stamp)
        except InvalidEvent:
            pass  # a poison message: the worker dead-letters it; no age to tell
    # A consumer's list always holds its batch marker; more than that is a batch under way.
    lists = [
        keys.inflight(consumer)
        for info in (await queue.registered()).values()
        for consumer in info.get("consumers", [])
    ]
    if lists:
        pipe = redis.pipeline(transaction=False)
        for name in lists:
            pipe.llen(name)
        figures.inflight_batches += sum(1 for n in await pipe.execute() if int(n) > 1)


async def read_figures(queue: Queue, timeout: float = READ_TIMEOUT_S) -> QueueFigures | None:
    """Every shard's figures, or None if Redis does not answer within ``timeout``."""
    figures = QueueFigures()
    now = time.time()

    async def read() -> None:
        for shard in queue.shards():
            await _shard_figures(shard, figures, now)

    try:
        await asyncio.wait_for(read(), timeout)
    except (RedisError, OSError, asyncio.TimeoutError):
        return None
    return figures


class FiguresCollector(Collector):
    """Yields one reading of :class:`QueueFigures` (or only ``analytics_redis_up 0``)."""

    def __init__(self, read: Callable[[], QueueFigures | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self._read()
        up = figures is not None
        yield GaugeMetricFamily("analytics_redis_up", "1 if Redis answered this scrape", up)
        if figures is None:
            return
        length = GaugeMetricFamily(
            "analytics_queue_length", "Events waiting in the queue", labels=["shard"]
        )
        for shard, n in sorted(figures.lengths.items()):
            length.add_metric([str(shard)], n)
        yield length
        yield GaugeMetricFamily(
            "analytics_inflight_batches",
            "Batches taken by consumers and not yet acknowledged (every worker)",
            figures.inflight_batches,
        )
        yield GaugeMetricFamily(
            "analytics_drain_lag_seconds",
            "Age of the oldest event waiting in the queue, from its timestamp (0: empty)",
            max(0.0, figures.oldest_wait_s),
        )
        yield GaugeMetricFamily(
            "analytics_dead_letters", "Messages refused by the worker", figures.dead_letters
        )


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read metrics: a client in ``METRICS_ALLOW_IPS`` or one with the token."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    token: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsAccess:
        items = filter(None, settings.metrics_allow_ips.split(","))
        networks = tuple(ipaddress.ip_network(item, strict=False) for item in items)
        return cls(networks, settings.metrics_token)

    def allows(self, client: str | None, authorization: str | None) -> bool:
        if self.token is not None and authorization is not None:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return True
        try:
            address = ipaddress.ip_address((client or "").strip())
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
