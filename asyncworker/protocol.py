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
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from redis.asyncio import Redis

SITE_ID_MAX = 255
EVENT_TYPE_MAX = 255
PATH_MAX = 500
USER_ID_MAX = 255
EVENT_ID_MAX = 64
EVENT_ID_TTL_S = 24 * 3600
RECEIVED_BUCKET_TTL_S = 15 * 60
BATCH_MARKER_PREFIX = b"#batch:"

_MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
_WIRE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class InvalidEvent(ValueError):
    """The event breaks a rule; ``str(exc)`` is the user-facing message naming the field."""


@dataclass(frozen=True, slots=True)
class Event:
    """A validated, normalized event: UTC-aware timestamp, optional fields possibly None."""

    site_id: str
    event_type: str
    path: str | None
    user_id: str | None
    timestamp: datetime
    event_id: str | None = None

    def to_wire(self) -> bytes:
        """The bytes pushed to the queue (compact JSON, timestamp in UTC with microseconds)."""
        body: dict[str, Any] = {
            "site_id": self.site_id,
            "event_type": self.event_type,
            "path": self.path,
            "user_id": self.user_id,
            "timestamp": self.timestamp.strftime(_WIRE_TIME),
        }
        if self.event_id is not None:
            body["event_id"] = self.event_id
        return orjson.dumps(body)

    def row(self) -> dict[str, Any]:
        """Column values for the ``events`` table (naive UTC, as the DATETIME column stores)."""
        return {
            "site_id": self.site_id,
            "event_type": self.event_type,
            "path": self.path,
            "user_id": self.user_id,
            "timestamp": self.timestamp.replace(tzinfo=None),
        }


def _required_str(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if value is None or value == "":
        raise InvalidEvent(f"{name} required")
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string")
    if len(value) > limit:
        raise InvalidEvent(f"{name} must be at most {limit} characters")
    return value


def _optional_str(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string")
    if len(value) > limit:
        raise InvalidEvent(f"{name} must be at most {limit} characters")
    return value


# ISO 8601 extended format: a date, optionally a time (HH:MM[:SS[.fraction]]) and then
# optionally ``Z`` or an offset. Matched explicitly because ``datetime.fromisoformat``
# differs between Python versions and, on 3.11+, ignores a trailing NUL and accepts any
# character as the date/time separator.
_ISO_8601 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"([Zz]|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)


def _offset(text: str | None) -> timezone:
    if text is None or text in ("Z", "z"):
        return timezone.utc
    hours = int(text[1:3])
    minutes = int(text[-2:]) if len(text) > 3 else 0
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 to an aware UTC datetime; an offset or ``Z`` is converted, naive means UTC."""
    match = _ISO_8601.fullmatch(value.strip())
    try:
        if match is None:
            raise ValueError("not ISO 8601")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=_offset(offset),
        )
    except ValueError:
        raise InvalidEvent("timestamp must be an ISO 8601 date-time") from None
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidEvent("timestamp is out of range") from None
    if parsed < _MIN_TIME:
        raise InvalidEvent("timestamp must not be before 1970-01-01")
    return parsed


def validate_event(data: object, received_at: datetime | None) -> Event:
    """Check a decoded JSON body against the API's rules and normalize it.

    ``received_at`` is the server's clock for an event without a timestamp; the
    worker passes ``None`` because everything the web edge queues has one, so a
    queued message without it was written by some other producer and is poison.
    """
    if not isinstance(data, dict):
        raise InvalidEvent("body must be a JSON object")
    site_id = _required_str(data, "site_id", SITE_ID_MAX)
    event_type = _required_str(data, "event_type", EVENT_TYPE_MAX)
    path = _optional_str(data, "path", PATH_MAX)
    user_id = _optional_str(data, "user_id", USER_ID_MAX)
    event_id = _optional_str(data, "event_id", EVENT_ID_MAX)
    if event_id == "":
        raise InvalidEvent("event_id must not be empty")
    raw_time = data.get("timestamp")
    if raw_time is None:
        if received_at is None:
            raise InvalidEvent("timestamp required")
        timestamp = received_at
    elif not isinstance(raw_time, str) or not raw_time.strip():
        raise InvalidEvent("timestamp must be an ISO 8601 date-time")
    else:
        timestamp = parse_timestamp(raw_time)
    return Event(site_id, event_type, path, user_id, timestamp, event_id)


def decode_wire(raw: bytes) -> Event:
    """Parse one queued message; raises :class:`InvalidEvent` with the reason if it is poison."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidEvent("not valid JSON") from None
    return validate_event(data, None)


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
