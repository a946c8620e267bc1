"""A reference sessionizer for tests: what the enqueue script does, in plain Python.

Given events in acceptance order (without visits), :class:`Sessionizer` returns them
with the :class:`~db.visit.Visit` the Redis script would attach: a visitor's current
visit continues iff the event's time is at most 30 minutes after the visit's latest
time and not more than 30 minutes before its earliest; otherwise the event opens a new
visit with a new random id. The visit's state then counts the event, widens
first/last, takes the entry page from its first pageview and the exit page from its
latest accepted one (db/visit.py). A visit's dimensions are those of its first event.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from db.event import Event
from db.rollups.visits import is_pageview
from db.visit import VISIT_ID_MAX, Visit, VisitState, to_us

GAP_US = 30 * 60 * 1_000_000


def visitor_of(site_id: str, who: str) -> str:
    """A visitor digest (what the edge derives from a user id or a salted address)."""
    return hashlib.md5(f"{site_id}\0{who}".encode(), usedforsecurity=False).hexdigest()


@dataclass
class _Current:
    id: int
    start: int
    dims: Mapping[str, str]
    state: VisitState


def advance(state: VisitState | None, at: int, event_type: str, path: str | None) -> VisitState:
    """A visit's state after one more event (``state`` None: the event opens it)."""
    page = path if is_pageview(event_type, path) else None
    if state is None:
        return VisitState(1, at, at, page, page)
    return VisitState(
        state.events + 1,
        min(state.first, at),
        max(state.last, at),
        state.entry if state.entry is not None else page,
        page if page is not None else state.exit,
    )


class Sessionizer:
    """Visits per visitor across the events it is given, in the order given."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._current: dict[str, _Current] = {}

    def visit(self, event: Event, who: str, dims: Mapping[str, str] | None = None) -> Event:
        """``event`` with the visit of visitor ``who`` (dims apply if it opens one)."""
        visitor = visitor_of(event.site_id, who)
        at = to_us(event.timestamp)
        cur = self._current.get(visitor)
        if cur is not None and cur.state.first - GAP_US <= at <= cur.state.last + GAP_US:
            before: VisitState | None = cur.state
        else:
            before = None
            cur = self._current[visitor] = _Current(
                self._rng.randrange(1, VISIT_ID_MAX),
                at,
                dict(dims or {}),
                VisitState(0, at, at, None, None),
            )
        after = advance(before, at, event.event_type, event.path)
        cur.state = after
        visit = Visit(visitor, cur.id, after.events, cur.start, cur.dims, before, after)
        return replace(event, visit=visit)

    def run(
        self, items: Iterable[tuple[Event, str | None, Mapping[str, str] | None]]
    ) -> list[Event]:
        """Events with their visits; an item whose ``who`` is None stays without a visit."""
        return [e if who is None else self.visit(e, who, dims) for e, who, dims in items]
