"""What a set of events adds to the visitor and visit aggregates, in memory (no SQL here).

The figures are defined in the visitors issue's contract (and reproduced by plain SQL in
``tests/reference_sql.py``): event-level figures (distinct visitors, pageviews, and the
``page``, ``event_type`` and ``props:<key>`` breakdowns) are keyed by the event's own
day or hour; visit-level figures (visits, bounces, duration, entry and exit pages and
the visit's dimensions) by the day or hour of the visit's first accepted event.

Why each event adds ``f(after) - f(before)``: a visit's events may be committed by
different batches, concurrently and in any order. Each event carries the visit's state
just before and just after it (db/visit.py), so the contributions telescope to the
visit's final figures whatever order they commit in. Distinct-visitor rows that a
visit contributes (its dimensions' and entry page's visitors) are added once, by the
one event that creates them (the visit's first, or the one that set its entry page):
sets are unions, so the final set is the same in any order. A visit's device and place
values go to its visitor-day's profile instead (db/models.py says why); which of a
visitor-day's profiles is stored first does not matter, for the same reason.

``rebuild-rollups`` feeds the same class: each stored event through :meth:`add_row`
and each complete visit as one change from no visit to its final state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from db.event import Event
from db.models import DAY_FIGURES, PROFILE_DIMENSIONS, VALUE_FIGURES, VISIT_DIMENSIONS
from db.rollups.deltas import digest, hour_of
from db.visit import Visit, VisitState, from_us

PAGEVIEW = "pageview"

# The breakdown properties, in the order the API lists them: the event-level ones, the
# visit's entry and exit pages, then its dimensions (each visit-level).
PAGE, EVENT_TYPE, ENTRY_PAGE, EXIT_PAGE = "page", "event_type", "entry_page", "exit_page"
PROPS_PREFIX = "props:"
PROPERTIES: tuple[str, ...] = (PAGE, ENTRY_PAGE, EXIT_PAGE, *VISIT_DIMENSIONS, EVENT_TYPE)

_VISITS, _BOUNCES, _DURATION, _PAGEVIEWS, _EVENTS = 1, 2, 3, 4, 5
_BOTS = 5

# A visit's start (µs) per hour: the hour's index is the key of its (day, hour).
_HOUR_US = 3_600_000_000

# (site, day); (site, hour); (site, day, property, value digest).
SiteDay = tuple[str, date]
SiteHour = tuple[str, datetime]
ValueKey = tuple[str, date, str, str]
# A visitor-day (site, day, visitor) and a profile: the digests of a visit's
# PROFILE_DIMENSIONS values, '' where it has none (db/models.py says why).
ProfileKey = tuple[str, date, str]
Profile = tuple[str, ...]
_PROFILE_SLOT = {name: slot for slot, name in enumerate(PROFILE_DIMENSIONS)}


def is_pageview(event_type: str, path: str | None) -> bool:
    """A pageview: an event of type ``pageview`` with a path (the contract's definition)."""
    return event_type == PAGEVIEW and path is not None


def dimension_values(dims: Mapping[str, str]) -> list[tuple[str, str]]:
    """(property, value) of a visit's dimensions as breakdowns list them: a version is shown
    with its family (``"Chrome 120"``), and is not listed without one (as SQL's CONCAT)."""
    out = []
    for name in VISIT_DIMENSIONS:
        value = dims.get(name)
        if value is None:
            continue
        if name in ("browser_version", "os_version"):
            family = dims.get(name.removesuffix("_version"))
            if family is None:
                continue
            value = f"{family} {value}"
        out.append((name, value))
    return out


def _figures(n: int) -> list[int]:
    return [0] * n


@dataclass
class VisitDeltas:
    """The visitor and visit deltas of a set of events.

    Set rows (``*_visitors``) are keys to insert if absent; ``day_visits`` and
    ``values`` hold figure vectors in their tables' column order (the ``visitors``
    slot stays 0 here: the writer fills it from the rows that were new);
    ``exit_visits`` holds the change of each (exit page, visitor) pair's visit count;
    ``profiles`` the device and place profiles of the visits opened, per visitor-day.
    """

    day_visits: dict[SiteDay, list[int]] = field(default_factory=dict)
    hour_visits: Counter[SiteHour] = field(default_factory=Counter)
    day_visitors: set[tuple[str, date, str]] = field(default_factory=set)
    hour_visitors: set[tuple[str, datetime, str]] = field(default_factory=set)
    values: dict[ValueKey, list[int]] = field(default_factory=dict)
    value_names: dict[str, str] = field(default_factory=dict)
    value_visitors: set[tuple[str, date, str, str, str]] = field(default_factory=set)
    exit_visits: Counter[tuple[str, date, str, str]] = field(default_factory=Counter)
    # The distinct profiles of the visits opened per visitor-day, in the order seen.
    profiles: dict[ProfileKey, list[Profile]] = field(default_factory=dict)
    # Visit changes per (site, day, dimensions), spread over the dimensions' breakdown
    # rows by :meth:`finish` (most of a batch's visits share a few dimension sets).
    _by_dims: dict[tuple[str, date, tuple[tuple[str, str], ...]], list[int]] = field(
        default_factory=dict
    )
    _digests: dict[str, str] = field(default_factory=dict)
    # Memos: (day, hour) per hour of a visit's start; (property, value digest) of a
    # visit's dimensions per dimension set.
    _starts: dict[int, tuple[date, datetime]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _dimension_keys: dict[tuple[tuple[str, str], ...], list[tuple[str, str]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _splits: dict[tuple[tuple[str, str], ...], tuple[list[tuple[str, str]], Profile | None]] = (
        field(default_factory=dict, repr=False, compare=False)
    )

    def _digest(self, value: str) -> str:
        out = self._digests.get(value)
        if out is None:
            out = self._digests[value] = digest(value)
            self.value_names[out] = value
        return out

    def _day(self, key: SiteDay) -> list[int]:
        row = self.day_visits.get(key)
        if row is None:
            row = self.day_visits[key] = _figures(len(DAY_FIGURES))
        return row

    def _value(self, site: str, day: date, prop: str, value: str) -> tuple[ValueKey, list[int]]:
        key = (site, day, prop, self._digest(value))
        return key, self._value_row(key)

    def _value_row(self, key: ValueKey) -> list[int]:
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = _figures(len(VALUE_FIGURES))
        return row

    def _start(self, start: int) -> tuple[date, datetime]:
        """The day and hour of a visit's start (µs), memoized per hour (visits that
        start in the same hour are many; from_us and replace are slow)."""
        index = start // _HOUR_US
        out = self._starts.get(index)
        if out is None:
            began = from_us(start)
            out = self._starts[index] = (began.date(), hour_of(began))
        return out

    def _dimension_digests(self, items: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
        """(property, value digest) of a visit's dimensions (``items``), as
        :func:`dimension_values` lists them, memoized per dimension set."""
        out = self._dimension_keys.get(items)
        if out is None:
            values = dimension_values(dict(items))
            out = self._dimension_keys[items] = [(p, self._digest(v)) for p, v in values]
        return out

    def add_bot(self, site: str, day: date) -> None:
        self._day((site, day))[_BOTS] += 1

    def add_row(
        self,
        site: str,
        event_type: str,
        path: str | None,
        timestamp: datetime,
        visitor: str | None,
        props: Mapping[str, str] | None,
    ) -> None:
        """The event-level figures of one stored (not bot) event, by its own day and hour."""
        day = timestamp.date()
        pageview = is_pageview(event_type, path)
        self._day((site, day))[_PAGEVIEWS] += pageview
        if visitor is None:
            return
        hour = hour_of(timestamp)
        self.day_visitors.add((site, day, visitor))
        self.hour_visitors.add((site, hour, visitor))
        listed = [(EVENT_TYPE, event_type)]
        if pageview:
            assert path is not None
            key, row = self._value(site, day, PAGE, path)
            row[_PAGEVIEWS] += 1
            self.value_visitors.add((*key, visitor))
        if props:
            listed.extend((PROPS_PREFIX + k, v) for k, v in props.items())
        for prop, value in listed:
            key, row = self._value(site, day, prop, value)
            row[_EVENTS] += 1
            self.value_visitors.add((*key, visitor))

    def add_change(
        self,
        site: str,
        visitor: str,
        start: int,
        dims: Mapping[str, str],
        before: VisitState | None,
        after: VisitState,
    ) -> None:
        """What a visit's change from ``before`` (None: no visit yet) to ``after`` adds,
        under the day and hour of the visit's first event (``start``, µs)."""
        day, hour = self._start(start)
        opened = before is None
        visits = int(opened)
        bounces = int(after.bounced) - int(before is not None and before.bounced)
        duration = after.duration_us - (0 if before is None else before.duration_us)
        if visits:
            self.hour_visits[(site, hour)] += 1
        if visits or bounces or duration:
            day_row = self._day((site, day))
            day_row[_VISITS] += visits
            day_row[_BOUNCES] += bounces
            day_row[_DURATION] += duration
            items = tuple(dims.items())
            group_key = (site, day, items)
            group = self._by_dims.get(group_key)
            if group is None:
                group = self._by_dims[group_key] = [0, 0, 0]
            group[0] += visits
            group[1] += bounces
            group[2] += duration
            if opened:
                self._open(site, day, visitor, items)
        entry_before = None if before is None else before.entry
        if entry_before is None and after.entry is not None:
            key, row = self._value(site, day, ENTRY_PAGE, after.entry)
            row[_VISITS] += 1
            self.value_visitors.add((*key, visitor))
        exit_before = None if before is None else before.exit
        if exit_before != after.exit:
            for page, change in ((exit_before, -1), (after.exit, 1)):
                if page is not None:
                    key, row = self._value(site, day, EXIT_PAGE, page)
                    row[_VISITS] += change
                    self.exit_visits[(site, day, key[3], visitor)] += change

    def _open(self, site: str, day: date, visitor: str, items: tuple[tuple[str, str], ...]) -> None:
        """An opened visit's distinct visitor per dimension value: acquisition values as
        set rows, device and place values as its visitor-day's profile."""
        acquisition, profile = self._split(items)
        for prop, value_hash in acquisition:
            self.value_visitors.add((site, day, prop, value_hash, visitor))
        if profile:
            seen = self.profiles.setdefault((site, day, visitor), [])
            if profile not in seen:
                seen.append(profile)

    def _split(
        self, items: tuple[tuple[str, str], ...]
    ) -> tuple[list[tuple[str, str]], Profile | None]:
        """A dimension set's acquisition (property, digest) pairs and its profile (None
        without any device or place value), memoized per dimension set."""
        out = self._splits.get(items)
        if out is None:
            acquisition, profile = [], [""] * len(PROFILE_DIMENSIONS)
            for prop, value_hash in self._dimension_digests(items):
                slot = _PROFILE_SLOT.get(prop)
                if slot is None:
                    acquisition.append((prop, value_hash))
                else:
                    profile[slot] = value_hash
            out = self._splits[items] = (acquisition, tuple(profile) if any(profile) else None)
        return out

    def resolve_profiles(self, stored: Mapping[ProfileKey, Profile]) -> None:
        """Given each visitor-day's stored profile, add as set rows the values of this
        batch's other profiles that the stored one lacks (a visitor's distinct values are
        its stored profile's plus its set rows, never both for one value)."""
        for key, profiles in self.profiles.items():
            site, day, visitor = key
            primary = stored[key]
            for profile in profiles:
                for slot, value in enumerate(profile):
                    if value and value != primary[slot]:
                        prop = PROFILE_DIMENSIONS[slot]
                        self.value_visitors.add((site, day, prop, value, visitor))

    @staticmethod
    def profile_visitors(
        new: Iterable[ProfileKey], stored: Mapping[ProfileKey, Profile]
    ) -> Counter[ValueKey]:
        """The visitors that the new visitor-day profiles ``new`` add per value."""
        out: Counter[ValueKey] = Counter()
        for key in new:
            site, day, _ = key
            for slot, value in enumerate(stored[key]):
                if value:
                    out[(site, day, PROFILE_DIMENSIONS[slot], value)] += 1
        return out

    def add_visit(self, site: str, visit: Visit) -> None:
        self.add_change(site, visit.visitor, visit.start, visit.dims, visit.before, visit.after)

    def add_event(self, event: Event) -> None:
        """One queued event: a bot only counts as one; others add their event-level
        figures and their visit's change."""
        if event.bot:
            self.add_bot(event.site_id, event.timestamp.date())
            return
        visit = event.visit
        self.add_row(
            event.site_id,
            event.event_type,
            event.path,
            event.timestamp,
            None if visit is None else visit.visitor,
            event.props,
        )
        if visit is not None:
            self.add_visit(event.site_id, visit)

    def finish(self) -> VisitDeltas:
        """Spread the visit changes grouped by dimensions over their breakdown rows (call
        once all events are added; :func:`aggregate_visits` and the writer do)."""
        for (site, day, items), (visits, bounces, duration) in self._by_dims.items():
            for prop, value_hash in self._dimension_digests(items):
                row = self._value_row((site, day, prop, value_hash))
                row[_VISITS] += visits
                row[_BOUNCES] += bounces
                row[_DURATION] += duration
        self._by_dims.clear()
        return self

    def exit_changes(self) -> dict[tuple[str, date, str, str], int]:
        """The non-zero changes of (site, day, exit page digest, visitor) visit counts
        (a visit whose exit moved twice within the batch cancels out)."""
        return {k: n for k, n in self.exit_visits.items() if n}


def aggregate_visits(batch: Iterable[Event]) -> VisitDeltas:
    deltas = VisitDeltas()
    for event in batch:
        deltas.add_event(event)
    return deltas.finish()
