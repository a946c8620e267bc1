"""What the queue's operations answer: typed results of the Lua scripts' return codes."""

from __future__ import annotations

import enum
from typing import NamedTuple

from redis.exceptions import RedisError


class EnqueueResult(enum.Enum):
    """What the enqueue script did; a DUPLICATE is answered as accepted, a full queue 503.

    UNREPLICATED: queued on the master, but fewer replicas than ``REDIS_WAIT_REPLICAS``
    acknowledged it in time (answered 503: a retry with the same event_id is deduplicated).
    """

    ACCEPTED = 1
    DUPLICATE = 0
    QUEUE_FULL = -1
    UNREPLICATED = -2


class NotReplicated(RedisError):
    """Fewer replicas than REDIS_WAIT_REPLICAS acknowledged a batch's moves (retried)."""


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
