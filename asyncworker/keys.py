"""Names of the queue's Redis keys and the batch markers: the layout of data at rest.

Existing deployments hold data under exactly these names, so they never change.
Every key shares the hash tag ``{<queue name>}`` (the queue itself is named by
``REDIS_QUEUE_NAME`` exactly, which hashes to the same slot), so each script's keys
live in one slot and the same code runs on Redis Cluster.

With ``QUEUE_SHARDS`` > 1, shard 0 keeps exactly those names and shard ``i`` > 0 uses
the tag ``{<queue name>:i}`` for all of its keys (its queue is named by the tag alone),
so a cluster spreads the shards over its masters while each script stays in one slot.
"""

from __future__ import annotations

import hashlib
import uuid

import orjson

EVENT_ID_TTL_S = 24 * 3600
RECEIVED_BUCKET_TTL_S = 15 * 60
# The longest pause inside a visit (the 30 minutes), and how long a visitor's
# visit state outlives its last event in wall-clock time (the pause and a margin).
VISIT_GAP_S = 30 * 60
VISIT_STATE_TTL_S = VISIT_GAP_S + 5 * 60
# A day's visitor salt lives 48 hours: yesterday's still continues a visit past midnight.
SALT_TTL_S = 48 * 3600
BATCH_MARKER_PREFIX = b"#batch:"


def new_batch_marker() -> bytes:
    """A unique marker; the tail of an in-flight list names the batch it holds."""
    return BATCH_MARKER_PREFIX + uuid.uuid4().hex.encode()


def batch_id_of(marker: bytes) -> str | None:
    """The batch id (the ledger's key) a marker carries, or None for an event."""
    if marker.startswith(BATCH_MARKER_PREFIX):
        return marker[len(BATCH_MARKER_PREFIX) :].decode("ascii", "replace")
    return None


def site_of(raw: bytes) -> str | None:
    """The ``site_id`` a queued message names, or None (a message that is not one of ours)."""
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    site = found.get("site_id") if isinstance(found, dict) else None
    return site if isinstance(site, str) and site else None


def shard_of(site_id: str, visitor_key: str, shards: int) -> int:
    """The shard of a visitor's events: stable across processes and restarts.

    The first 8 bytes of blake2b over ``site_id`` and the visitor's key, mod ``shards``;
    the web edge passes the user_id, or the event_id when there is none, so a retry
    lands on the shard that holds its dedupe key.
    """
    if shards <= 1:
        return 0
    digest = hashlib.blake2b(f"{site_id}\0{visitor_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


class QueueKeys:
    """Names of the Redis keys for one shard of a queue, all in the shard's hash slot."""

    def __init__(self, queue_name: str, shard: int = 0) -> None:
        self.shard = shard
        if shard == 0:
            self.queue = queue_name
            self.tag = "{" + queue_name + "}"
        else:
            self.tag = "{" + f"{queue_name}:{shard}" + "}"
            self.queue = self.tag
        self.workers = f"{self.tag}:workers"
        self.dead = f"{self.tag}:dead"
        # Per site, the events queued or in flight on this shard (a hash: site -> count):
        # counted by the enqueue script, counted down by the finish script.
        self.pending = f"{self.tag}:pending"

    def inflight(self, consumer_id: str) -> str:
        return f"{self.tag}:inflight:{consumer_id}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.tag}:heartbeat:{worker_id}"

    def seen(self, site_id: str, event_id: str) -> str:
        digest = hashlib.sha256(f"{site_id}\0{event_id}".encode()).hexdigest()[:40]
        return f"{self.tag}:seen:{digest}"

    def visit(self, site_id: str, visitor: str) -> str:
        """A visitor's current visit (a hash): id, events, times, entry/exit, dimensions."""
        digest = hashlib.sha256(f"{site_id}\0{visitor}".encode()).hexdigest()[:40]
        return f"{self.tag}:visit:{digest}"

    def salt(self, day: str) -> str:
        """The visitor salt of a UTC day (``YYYY-MM-DD``); shard 0 holds the salts."""
        return f"{self.tag}:salt:{day}"

    def login_attempts(self, scope: str, ident: str) -> str:
        """Sign-in attempts of one ``scope`` (an account, an address, both, a device), in
        a window; ``ident`` arrives keyed by the web edge (no address or email in clear)."""
        digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self.tag}:login:{scope}:{digest}"

    def received(self, minute: int) -> str:
        """Per-minute hash of accepted events, field = site_id (for the live panel)."""
        return f"{self.tag}:received:{minute}"
