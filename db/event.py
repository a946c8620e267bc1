"""The event record: its fields, the API's rules for them, and its JSON form.

Both sides of the queue use it: the web edge validates a request body into an
:class:`Event` and queues :meth:`Event.to_wire`; the worker reads the message
back with :func:`decode_wire` (the same rules, so a message some other producer
pushed is refused with a reason) and stores :meth:`Event.row`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from db.limits import EVENT_ID_MAX, EVENT_TYPE_MAX, PATH_MAX, SITE_ID_MAX, USER_ID_MAX
from db.models import EVENT_COLUMNS

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
        """Column values for ``events`` (naive UTC, as the DATETIME column stores)."""
        values = {name: getattr(self, name) for name in EVENT_COLUMNS}
        values["timestamp"] = self.timestamp.replace(tzinfo=None)
        return values


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
