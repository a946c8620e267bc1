"""The queue protocol: the one place both the web edge and the worker import.

It owns the event's validation rules, its wire format in the Redis list, the
names of every Redis key the system uses and the Lua scripts that touch them.

Every key shares the hash tag ``{<queue name>}`` (the queue itself is named by
``REDIS_QUEUE_NAME`` exactly, which hashes to the same slot), so each script's keys
live in one slot and the same code runs on Redis Cluster.

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

import hashlib
import uuid

from redis.asyncio import Redis

EVENT_ID_TTL_S = 24 * 3600
RECEIVED_BUCKET_TTL_S = 15 * 60
BATCH_MARKER_PREFIX = b"#batch:"


def new_batch_marker() -> bytes:
    return BATCH_MARKER_PREFIX + uuid.uuid4().hex.encode()


def batch_id_of(marker: bytes) -> str | None:
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

    def received(self, minute: int) -> str:
        """Per-minute hash of accepted events, field = site_id (for the live panel)."""
        return f"{self.tag}:received:{minute}"


# KEYS: queue, seen-key, received-bucket. ARGV: payload, max length, site_id,
#       dedupe ("1" when the event carries an event_id), dedupe ttl, bucket ttl.
# Returns 1 accepted, 0 duplicate of an accepted event_id, -1 queue full.
ENQUEUE_LUA = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
if ARGV[4] == '1' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[5])) then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))
return 1
"""

# KEYS: queue, in-flight list, workers hash. ARGV: how many, worker id, registration.
# Moves oldest-first, returns what moved. Re-registers the worker if a janitor dropped it
# during a pause: a list may only exist while its worker is registered, or no janitor
# would ever find it.
MOVE_LUA = """
redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[3])
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not v then break end
  out[i] = v
end
return out
"""

# KEYS: in-flight list, workers hash. ARGV: a fresh batch marker, worker id, registration.
# Returns the list (newest first, marker last), after sealing it with the marker if its
# tail is not one already. One step, so a janitor adopting the list in between cannot
# leave the owner holding events under a marker the adopted list does not carry.
CLAIM_LUA = """
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
local tail = redis.call('LINDEX', KEYS[1], -1)
if not tail or string.sub(tail, 1, 7) ~= '#batch:' then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""

# KEYS: in-flight list, dead-letter list. ARGV: batch marker, dead-letter entries...
# Acknowledges a committed batch, only if the list is still ours (not adopted).
FINISH_LUA = """
if redis.call('LINDEX', KEYS[1], -1) ~= ARGV[1] then return 0 end
for i = 2, #ARGV do redis.call('LPUSH', KEYS[2], ARGV[i]) end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: orphan in-flight list, its worker's heartbeat, the adopter's in-flight list.
# Returns 1 adopted, 0 nothing to adopt, -1 owner alive, -2 adopter busy.
ADOPT_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
return 1
"""

# KEYS: workers hash, the worker's heartbeat, then every in-flight list of the worker.
# ARGV: worker id. Drops the registration only if the worker is silent and owns no list,
# in one step, so a list created meanwhile keeps its worker findable.
FORGET_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

# KEYS: dead-letter list, queue. ARGV: the exact entry, the raw message.
# Moves one dead letter back to the queue, once, even if two requeues race.
REQUEUE_LUA = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class Scripts:
    """The worker's scripts, registered once per client: calls go out as EVALSHA."""

    def __init__(self, redis: Redis) -> None:
        self.move = redis.register_script(MOVE_LUA)
        self.claim = redis.register_script(CLAIM_LUA)
        self.finish = redis.register_script(FINISH_LUA)
        self.adopt = redis.register_script(ADOPT_LUA)
        self.forget = redis.register_script(FORGET_LUA)
