"""The visitor and visit aggregates of one site-day, recomputed from ``events`` (rebuild).

Event-level figures come from the day's own events. Visit-level figures belong to the
day of a visit's first event (``visit_seq`` 1), but the visit's later events may fall
on the next day, and the sessionizer accepts an event up to 30 minutes before a
visit's earliest time, so a visit that starts just after midnight may hold events of
the previous evening. ``db/rebuild.py`` therefore reads the window :func:`window`
(from :data:`LOOKBACK` before the day to the end of the next day) and folds every
visit seen there; the visits whose first event is on the day are counted from the
events read. The limit: a visit with events outside that window (longer than a day,
or reaching more than an hour back before midnight) is rebuilt from its events inside
it only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table

from db import models
from db.models import DAY_FIGURES, PROFILE_COLUMNS, VALUE_FIGURES, VISIT_DIMENSIONS
from db.rollups.visits import EXIT_PAGE, Profile, ProfileKey, VisitDeltas, is_pageview
from db.visit import VisitState, from_us, to_us

LOOKBACK = timedelta(hours=1)


def window(day: date) -> tuple[datetime, datetime]:
    """The events read to rebuild ``day``: see the module docstring."""
    low = datetime.combine(day, time.min)
    return low - LOOKBACK, low + timedelta(days=2)


@dataclass
class _Visit:
    events: int = 0
    first: int = 0
    last: int = 0
    entry: tuple[int, str] | None = None
    exit: tuple[int, str] | None = None
    opening: tuple[str, int, dict[str, str]] | None = None  # visitor, start µs, dims


class VisitFold:
    """The final state of each visit, folded from its stored events in any order."""

    def __init__(self) -> None:
        self._visits: dict[int, _Visit] = {}

    def add(
        self,
        visit_id: int,
        seq: int,
        visitor: str,
        timestamp: datetime,
        event_type: str,
        path: str | None,
        dims: dict[str, str],
    ) -> None:
        v = self._visits.get(visit_id)
        at = to_us(timestamp)
        if v is None:
            v = self._visits[visit_id] = _Visit(first=at, last=at)
        v.events += 1
        v.first, v.last = min(v.first, at), max(v.last, at)
        if path is not None and is_pageview(event_type, path):
            if v.entry is None or seq < v.entry[0]:
                v.entry = (seq, path)
            if v.exit is None or seq > v.exit[0]:
                v.exit = (seq, path)
        if seq == 1:
            v.opening = (visitor, at, dims)

    def add_to(self, deltas: VisitDeltas, site: str, day: date) -> None:
        """Add each visit whose first event is on ``day`` as one change from nothing."""
        for v in self._visits.values():
            if v.opening is None:
                continue
            visitor, start, dims = v.opening
            if from_us(start).date() != day:
                continue
            state = VisitState(
                v.events,
                v.first,
                v.last,
                None if v.entry is None else v.entry[1],
                None if v.exit is None else v.exit[1],
            )
            deltas.add_change(site, visitor, start, dims, None, state)


def dims_of(row: Any, offset: int) -> dict[str, str]:
    """The non-null dimension columns of ``row`` (in VISIT_DIMENSIONS order from ``offset``)."""
    out = {}
    for i, name in enumerate(VISIT_DIMENSIONS):
        value = row[offset + i]
        if value is not None:
            out[name] = value
    return out


def _set_rows(deltas: VisitDeltas) -> list[tuple[Table, list[dict[str, Any]]]]:
    """The visitor sets (rows written by a rebuild carry token 0) and the exit counts."""
    return [
        (
            models.rollup_day_visitors,
            [
                {"site_id": s, "day": d, "visitor_hash": v, "token": 0}
                for s, d, v in sorted(deltas.day_visitors)
            ],
        ),
        (
            models.rollup_hour_visitors,
            [
                {"site_id": s, "hour": h, "visitor_hash": v, "token": 0}
                for s, h, v in sorted(deltas.hour_visitors)
            ],
        ),
        (
            models.rollup_day_value_visitors,
            [
                {
                    "site_id": s,
                    "day": d,
                    "property": p,
                    "value_hash": h,
                    "visitor_hash": v,
                    "token": 0,
                }
                for s, d, p, h, v in sorted(deltas.value_visitors)
            ],
        ),
        (
            models.rollup_day_visit_profiles,
            [
                {
                    "site_id": s,
                    "day": d,
                    "visitor_hash": v,
                    "token": 0,
                    **dict(zip(PROFILE_COLUMNS, profiles[0], strict=True)),
                }
                for (s, d, v), profiles in sorted(deltas.profiles.items())
            ],
        ),
        (
            models.rollup_day_exit_visitors,
            [
                {"site_id": s, "day": d, "value_hash": h, "visitor_hash": v, "visits": n}
                for (s, d, h, v), n in sorted(deltas.exit_changes().items())
            ],
        ),
    ]


def _value_rows(deltas: VisitDeltas, primaries: dict[ProfileKey, Profile]) -> list[dict[str, Any]]:
    value_visitors = Counter(k[:4] for k in deltas.value_visitors)
    value_visitors.update(deltas.profile_visitors(primaries, primaries))
    value_visitors.update((s, d, EXIT_PAGE, h) for s, d, h, _ in deltas.exit_changes())
    names = deltas.value_names
    return [
        {
            "site_id": s,
            "day": d,
            "property": p,
            "value_hash": h,
            "value": names[h],
            "visitors": value_visitors[(s, d, p, h)],
            **dict(zip(VALUE_FIGURES[1:], f[1:], strict=True)),
        }
        for (s, d, p, h), f in sorted(deltas.values.items())
    ]


def visit_rows(deltas: VisitDeltas, bots: int) -> list[tuple[Table, list[dict[str, Any]]]]:
    """The complete visitor and visit rows of one site-day, per table, in the writer's
    table order; ``bots`` (never stored as events, so not recomputable) is kept.
    Each visitor-day's profile is its first visit's (any choice is exact: the others'
    values it lacks become set rows)."""
    primaries = {key: profiles[0] for key, profiles in deltas.profiles.items()}
    deltas.resolve_profiles(primaries)
    day_visitors = Counter(k[:2] for k in deltas.day_visitors)
    hour_visitors = Counter(k[:2] for k in deltas.hour_visitors)
    day_rows = [
        {
            **dict(zip(DAY_FIGURES, f, strict=True)),
            "site_id": site,
            "day": day,
            "visitors": day_visitors[(site, day)],
            "bots": bots,
        }
        for (site, day), f in sorted(deltas.day_visits.items())
    ]
    hours = sorted(set(deltas.hour_visits) | set(hour_visitors))
    hour_rows = [
        {
            "site_id": s,
            "hour": h,
            "visitors": hour_visitors[(s, h)],
            "visits": deltas.hour_visits[(s, h)],
        }
        for s, h in hours
    ]
    return [
        *_set_rows(deltas),
        (models.rollup_day_visits, day_rows),
        (models.rollup_hour_visits, hour_rows),
        (models.rollup_day_values, _value_rows(deltas, primaries)),
    ]
