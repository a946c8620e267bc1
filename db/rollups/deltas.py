"""What a set of events adds to the aggregates, computed in memory (no SQL here).

The worker aggregates each batch into one :class:`Deltas` before writing it, and
``rebuild-rollups`` aggregates a whole site-day the same way, so both write the
same figures for the same events.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from db.event import Event
from db.models import ALL_TYPES, ONE_TYPE

# (site_id, scope, event_type, bucket): bucket is a date (days) or a datetime (hours).
DayKey = tuple[str, int, str, date]
HourKey = tuple[str, int, str, datetime]
# The same plus the hex digest of a user id or a path.
DayHashKey = tuple[str, int, str, date, str]
HourHashKey = tuple[str, int, str, datetime, str]


def digest(value: str) -> str:
    """The key of a path or user id: MD5 of its UTF-8 bytes in hex, as SQL's ``MD5()``."""
    return hashlib.md5(value.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def hour_of(timestamp: datetime) -> datetime:
    """The naive start of ``timestamp``'s hour (its own clock, tzinfo dropped): what
    ``replace(minute=0, second=0, microsecond=0, tzinfo=None)`` gives, a few times faster."""
    return datetime(timestamp.year, timestamp.month, timestamp.day, timestamp.hour)


def scopes(event_type: str) -> tuple[tuple[int, str], tuple[int, str]]:
    return ((ALL_TYPES, ""), (ONE_TYPE, event_type))


@dataclass
class Deltas:
    """What a set of events adds to the aggregates, computed in memory."""

    days: Counter[DayKey] = field(default_factory=Counter)
    hours: Counter[HourKey] = field(default_factory=Counter)
    day_users: set[DayHashKey] = field(default_factory=set)
    hour_users: set[HourHashKey] = field(default_factory=set)
    path_views: Counter[DayHashKey] = field(default_factory=Counter)
    path_names: dict[str, str] = field(default_factory=dict)
    sites: Counter[str] = field(default_factory=Counter)
    # Digests of the paths and user ids seen (they repeat within a batch; md5 is slow).
    _digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def _digest(self, value: str) -> str:
        out = self._digests.get(value)
        if out is None:
            out = self._digests[value] = digest(value)
        return out

    def add(
        self,
        site_id: str,
        event_type: str,
        path: str | None,
        user_id: str | None,
        timestamp: datetime,
    ) -> None:
        """Count one event; ``timestamp`` is UTC (naive, or aware and converted by the caller)."""
        day = timestamp.date()
        hour = hour_of(timestamp)
        user = self._digest(user_id) if user_id is not None else None
        path_key = None
        if path is not None:
            path_key = self._digest(path)
            self.path_names[path_key] = path
        for scope, etype in ((ALL_TYPES, ""), (ONE_TYPE, event_type)):  # as scopes(event_type)
            self.days[(site_id, scope, etype, day)] += 1
            self.hours[(site_id, scope, etype, hour)] += 1
            if user is not None:
                self.day_users.add((site_id, scope, etype, day, user))
                self.hour_users.add((site_id, scope, etype, hour, user))
            if path_key is not None:
                self.path_views[(site_id, scope, etype, day, path_key)] += 1
        self.sites[site_id] += 1

    def add_event(self, event: Event) -> None:
        """Count a stored event; a bot's event is not one (db/rollups/visits counts it)."""
        if event.bot:
            return
        self.add(event.site_id, event.event_type, event.path, event.user_id, event.timestamp)


def aggregate(batch: Iterable[Event]) -> Deltas:
    deltas = Deltas()
    for event in batch:
        deltas.add_event(event)
    return deltas
