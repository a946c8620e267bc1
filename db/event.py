"""The event record: its fields, the API's rules for them, and its JSON form.

Both sides of the queue use it: the web edge validates a request body into an
:class:`Event` and queues :meth:`Event.to_wire`; the worker reads the message
back with :func:`decode_wire` (the same rules, so a message some other producer
pushed is refused with a reason) and stores :meth:`Event.row`.

The web edge also enriches the event (webapp/enrich) and the enqueue script
sessionizes it: a queued message then carries its :class:`Visit` (visitor, visit,
the visit's dimensions and its state before and after this event), from which the
worker derives every visitor and visit figure (db/rollups). The raw ``url``,
``referrer`` and ``screen_width`` of a request are read at the edge only and never
queued or stored; what is stored of them is the path, the source and the device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from db.limits import (
    EVENT_ID_MAX,
    EVENT_TYPE_MAX,
    PATH_MAX,
    PROP_KEY_MAX,
    PROP_VALUE_MAX,
    PROPS_MAX,
    REFERRER_MAX,
    SCREEN_WIDTH_MAX,
    SITE_ID_MAX,
    URL_MAX,
    USER_ID_MAX,
)
from db.models import EVENT_COLUMNS, VISIT_DIMENSIONS
from db.visit import BadVisit, Visit, decode_visit

_MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
_WIRE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class InvalidEvent(ValueError):
    """The event breaks a rule; ``str(exc)`` is the user-facing message naming the field."""


@dataclass(frozen=True, slots=True)
class Event:
    """A validated, normalized event: UTC-aware timestamp, optional fields possibly None.

    ``url``, ``referrer`` and ``screen_width`` are the request's, for the web edge's
    enrichment only (never queued). ``props`` holds custom properties with their values
    as text. ``visit`` is set once the enqueue script has sessionized the event. ``bot``
    marks a tracker event from a crawler: counted per site and day, never stored.
    """

    site_id: str
    event_type: str
    path: str | None
    user_id: str | None
    timestamp: datetime
    event_id: str | None = None
    props: dict[str, str] | None = None
    visit: Visit | None = None
    bot: bool = False
    url: str | None = None
    referrer: str | None = None
    screen_width: int | None = None

    def wire_body(self) -> dict[str, Any]:
        """The queued fields, without ``visit`` (which the enqueue script appends)."""
        body: dict[str, Any] = {
            "site_id": self.site_id,
            "event_type": self.event_type,
            "path": self.path,
            "user_id": self.user_id,
            "timestamp": self.timestamp.strftime(_WIRE_TIME),
        }
        if self.event_id is not None:
            body["event_id"] = self.event_id
        if self.props:
            body["props"] = self.props
        if self.bot:
            body["bot"] = True
        return body

    def to_wire(self) -> bytes:
        """The bytes pushed to the queue (compact JSON, timestamp in UTC with microseconds)."""
        body = self.wire_body()
        if self.visit is not None:
            body["visit"] = self.visit.to_json()
        return orjson.dumps(body)

    def row(self) -> dict[str, Any]:
        """Column values for ``events`` (naive UTC, as the DATETIME column stores)."""
        return dict(zip(EVENT_COLUMNS, self.values(), strict=True))

    def values(self) -> tuple[Any, ...]:
        """:meth:`row`'s values in :data:`~db.models.EVENT_COLUMNS` order, the one place
        that says which field fills which column (the worker renders these, no dict)."""
        visit = self.visit
        linked = _NO_VISIT if visit is None else (visit.visitor, visit.id, visit.seq)
        dims = _NO_DIMS if visit is None else tuple(map(visit.dims.get, VISIT_DIMENSIONS))
        return (
            self.site_id,
            self.event_type,
            self.path,
            self.user_id,
            self.timestamp.replace(tzinfo=None),
            *linked,
            *dims,
            orjson.dumps(self.props).decode() if self.props else None,
        )


# An event without a visit: no visitor, visit nor seq, and no dimensions.
_NO_VISIT: tuple[None, ...] = (None, None, None)
_NO_DIMS: tuple[None, ...] = (None,) * len(VISIT_DIMENSIONS)


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


def _number_text(value: object) -> str | None:
    """A JSON number or boolean as breakdowns show it; None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return orjson.dumps(value).decode()
    return None


def _props(data: dict[str, Any]) -> dict[str, str] | None:
    raw = data.get("props")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidEvent("props must be an object")
    if len(raw) > PROPS_MAX:
        raise InvalidEvent(f"props must have at most {PROPS_MAX} properties")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not key or len(key) > PROP_KEY_MAX:
            raise InvalidEvent(f"props keys must be 1 to {PROP_KEY_MAX} characters")
        text = value if isinstance(value, str) else _number_text(value)
        if text is None:
            raise InvalidEvent("props values must be strings, numbers or booleans")
        if len(text) > PROP_VALUE_MAX:
            raise InvalidEvent(f"props values must be at most {PROP_VALUE_MAX} characters")
        out[key] = text
    return out or None


def _screen_width(data: dict[str, Any]) -> int | None:
    value = data.get("screen_width")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("screen_width must be an integer")
    if not 0 <= value <= SCREEN_WIDTH_MAX:
        raise InvalidEvent(f"screen_width must be between 0 and {SCREEN_WIDTH_MAX}")
    return value


def _timestamp(data: dict[str, Any], received_at: datetime | None) -> datetime:
    raw_time = data.get("timestamp")
    if raw_time is None:
        if received_at is None:
            raise InvalidEvent("timestamp required")
        return received_at
    if not isinstance(raw_time, str) or not raw_time.strip():
        raise InvalidEvent("timestamp must be an ISO 8601 date-time")
    return parse_timestamp(raw_time)


def validate_event(data: object, received_at: datetime | None) -> Event:
    """Check a decoded JSON body against the API's rules and normalize it.

    ``received_at`` is the server's clock for an event without a timestamp; the
    worker passes ``None`` because everything the web edge queues has one, so a
    queued message without it was written by some other producer and is poison.
    """
    return _validated(data, received_at, queued=False)


def _validated(data: object, received_at: datetime | None, queued: bool) -> Event:
    """:func:`validate_event`, and with ``queued`` also the rules of a queued message
    (:func:`decode_wire`): checked before the one :class:`Event` is built, not after
    building it twice (the worker decodes every event)."""
    if not isinstance(data, dict):
        raise InvalidEvent("body must be a JSON object")
    site_id = _required_str(data, "site_id", SITE_ID_MAX)
    event_type = _required_str(data, "event_type", EVENT_TYPE_MAX)
    path = _optional_str(data, "path", PATH_MAX)
    user_id = _optional_str(data, "user_id", USER_ID_MAX)
    event_id = _optional_str(data, "event_id", EVENT_ID_MAX)
    if event_id == "":
        raise InvalidEvent("event_id must not be empty")
    url = _optional_str(data, "url", URL_MAX)
    referrer = _optional_str(data, "referrer", REFERRER_MAX)
    screen_width = _screen_width(data)
    props = _props(data)
    timestamp = _timestamp(data, received_at)
    visit, bot = None, False
    if queued:
        if url is not None or referrer is not None or screen_width is not None:
            raise InvalidEvent("url, referrer and screen_width are never queued")
        visit, bot = _queued_visit(data)
    return Event(
        site_id,
        event_type,
        path,
        user_id,
        timestamp,
        event_id,
        props=props,
        visit=visit,
        bot=bot,
        url=url,
        referrer=referrer,
        screen_width=screen_width,
    )


def _queued_visit(data: dict[str, Any]) -> tuple[Visit | None, bool]:
    """A queued message's visit and bot flag: a bot's event has no visit."""
    bot = data.get("bot", False)
    if bot is not False and bot is not True:
        raise InvalidEvent("bot must be a boolean")
    raw_visit = data.get("visit")
    try:
        visit = None if raw_visit is None else decode_visit(raw_visit)
    except BadVisit as exc:
        raise InvalidEvent(str(exc)) from None
    if bot and visit is not None:
        raise InvalidEvent("a bot's event has no visit")
    return visit, bot


def decode_wire(raw: bytes) -> Event:
    """Parse one queued message; raises :class:`InvalidEvent` with the reason if it is poison."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidEvent("not valid JSON") from None
    return _validated(data, None, queued=True)
