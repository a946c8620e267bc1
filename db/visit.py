"""A sessionized event's visit, as the enqueue script saw it (the wire's ``visit`` object).

The enqueue script (asyncworker/lua/enqueue.lua) keeps each visitor's current visit in
Redis and, atomically with queueing the event, appends to the message the visit's id,
the event's place in it (``seq``, 1 for the event that opened it, in the order events
were accepted), the visit's dimensions (those of its first event) and the visit's
state just before and just after this event.

Why both states: a visit's figures (bounce, duration, exit page) change as its events
arrive, and its events may be stored by different batches in any order. Each event
contributes ``after - before`` to the aggregates, so the contributions of a visit's
events add up to its final state whatever order they are committed in (db/rollups).

Times are integer microseconds since the epoch (exact in Lua's doubles up to 2**53).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

from db.limits import LABEL_MAX, PATH_MAX
from db.models import VISIT_DIMENSIONS

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_VISITOR = re.compile(r"[0-9a-f]{32}", re.ASCII)
_MAX_US = 2**53
VISIT_ID_MAX = 2**63 - 1


class BadVisit(ValueError):
    """The wire's visit object is malformed (a message some other producer wrote)."""


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware or naive-UTC datetime."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """The naive UTC datetime of ``us`` microseconds since the epoch."""
    return (_EPOCH + timedelta(microseconds=us)).replace(tzinfo=None)


class VisitState(NamedTuple):
    """A visit after some of its events: how many, earliest and latest time, entry and
    exit page (paths of its first and last pageview in accepted order, None before one).
    A named tuple: two are built for every queued event, at a fraction of a frozen
    dataclass's cost."""

    events: int
    first: int
    last: int
    entry: str | None
    exit: str | None

    @property
    def duration_us(self) -> int:
        return self.last - self.first

    @property
    def bounced(self) -> bool:
        return self.events == 1

    def to_json(self) -> list[Any]:
        return list(self)


@dataclass(frozen=True, slots=True)
class Visit:
    """The visit of one event: see the module docstring."""

    visitor: str
    id: int
    seq: int
    start: int
    dims: Mapping[str, str]
    before: VisitState | None
    after: VisitState

    @property
    def day(self) -> date:
        """The visit's day: the UTC day of its first accepted event."""
        return from_us(self.start).date()

    @property
    def hour(self) -> datetime:
        return from_us(self.start).replace(minute=0, second=0, microsecond=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "visitor": self.visitor,
            "id": str(self.id),
            "seq": self.seq,
            "start": self.start,
            "dims": dict(self.dims),
            "before": None if self.before is None else self.before.to_json(),
            "after": self.after.to_json(),
        }


def _int(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadVisit("visit holds an out-of-range number")
    return value


def _path(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > PATH_MAX:
        raise BadVisit("visit holds a malformed page")
    return value


def _state(raw: object) -> VisitState:
    if not isinstance(raw, list) or len(raw) != 5:
        raise BadVisit("visit state must be a list of 5")
    events, first, last, entry, exit_ = raw
    state = VisitState(
        _int(events, 1, _MAX_US),
        _int(first, 0, _MAX_US),
        _int(last, 0, _MAX_US),
        _path(entry),
        _path(exit_),
    )
    if state.last < state.first:
        raise BadVisit("visit ends before it starts")
    return state


# Each dimension's longest value (a referrer is a page address, the others labels).
_DIMENSION_MAX = {name: PATH_MAX if name == "referrer" else LABEL_MAX for name in VISIT_DIMENSIONS}


def _dims(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise BadVisit("visit dims must be an object")
    for name, value in raw.items():
        limit = _DIMENSION_MAX.get(name)
        if limit is None:
            raise BadVisit(f"unknown visit dimension {name!r}")
        if not isinstance(value, str) or not value or len(value) > limit:
            raise BadVisit(f"visit dimension {name} is malformed")
    return raw


def decode_visit(raw: object) -> Visit:
    """The :class:`Visit` of a queued message's ``visit`` object; raises :class:`BadVisit`."""
    if not isinstance(raw, dict):
        raise BadVisit("visit must be an object")
    visitor, visit_id = raw.get("visitor"), raw.get("id")
    if not isinstance(visitor, str) or not _VISITOR.fullmatch(visitor):
        raise BadVisit("visit has no visitor")
    if not isinstance(visit_id, str) or not visit_id.isascii() or not visit_id.isdigit():
        raise BadVisit("visit has no id")
    before = None if raw.get("before") is None else _state(raw.get("before"))
    after = _state(raw.get("after"))
    seq = _int(raw.get("seq"), 1, _MAX_US)
    if (before is None) != (seq == 1) or after.events != seq:
        raise BadVisit("visit states disagree with its seq")
    return Visit(
        visitor=visitor,
        id=_int(int(visit_id), 1, VISIT_ID_MAX),
        seq=seq,
        start=_int(raw.get("start"), 0, _MAX_US),
        dims=_dims(raw.get("dims", {})),
        before=before,
        after=after,
    )
