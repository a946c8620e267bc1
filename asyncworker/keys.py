"""Names of the queue's Redis keys and the batch markers: the layout of data at rest.

Existing deployments hold data under exactly these names, so they never change.
Every key shares the hash tag ``{<queue name>}`` (the queue itself is named by
``REDIS_QUEUE_NAME`` exactly, which hashes to the same slot), so each script's keys
live in one slot and the same code runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib
import uuid

EVENT_ID_TTL_S = 24 * 3600
RECEIVED_BUCKET_TTL_S = 15 * 60
BATCH_MARKER_PREFIX = b"#batch:"


def new_batch_marker() -> bytes:
    """A unique marker; the tail of an in-flight list names the batch it holds."""
    return BATCH_MARKER_PREFIX + uuid.uuid4().hex.encode()


def batch_id_of(marker: bytes) -> str | None:
    """The batch id (the ledger's key) a marker carries, or None for an event."""
    if marker.startswith(BATCH_MARKER_PREFIX):
        return marker[len(BATCH_MARKER_PREFIX) :].decode("ascii", "replace")
    return None


class QueueKeys:
    """Names of the Redis keys for one queue, all in the queue's hash slot."""

    def __init__(self, queue_name: str) -> None:
        self.queue = queue_name
        self.tag = "{" + queue_name + "}"
        self.workers = f"{self.tag}:workers"
        self.dead = f"{self.tag}:dead"

    def inflight(self, consumer_id: str) -> str:
        return f"{self.tag}:inflight:{consumer_id}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.tag}:heartbeat:{worker_id}"

    def seen(self, site_id: str, event_id: str) -> str:
        digest = hashlib.sha256(f"{site_id}\0{event_id}".encode()).hexdigest()[:40]
        return f"{self.tag}:seen:{digest}"

    def login_failures(self, scope: str, ident: str) -> str:
        """Failed sign-ins of one account or one client address (``scope``), in a window."""
        digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self.tag}:login:{scope}:{digest}"

    def received(self, minute: int) -> str:
        """Per-minute hash of accepted events, field = site_id (for the live panel)."""
        return f"{self.tag}:received:{minute}"
