"""Realistic visitors for the benchmark: what the web edge would derive from real traffic.

Each visitor has a fixed device profile (browser and OS with major versions, size class,
country, sometimes region and city, as ua-parser, iptocc and a GeoIP file would give);
each visit comes from a source (direct, search engines, social sites, a referring blog,
or UTM-tagged campaigns) with the referrer page; clicks and signups carry custom props;
about 1% of tracker events are bots. Events are sessionized in time order by the tests'
reference sessionizer (tests/visit_model.py), as the enqueue script would accept them.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from datetime import datetime

from db.event import Event
from tests.visit_model import Sessionizer

DEVICES = [
    # (browser, version, os, os version, device, weight)
    ("Chrome", "120", "Windows", "10", "Desktop", 30),
    ("Chrome", "119", "Mac OS X", "14", "Laptop", 10),
    ("Safari", "17", "Mac OS X", "14", "Laptop", 8),
    ("Mobile Safari", "17", "iOS", "17", "Mobile", 20),
    ("Chrome Mobile", "120", "Android", "14", "Mobile", 15),
    ("Firefox", "121", "Windows", "11", "Desktop", 6),
    ("Firefox", "121", "Ubuntu", "22", "Laptop", 2),
    ("Edge", "120", "Windows", "11", "Desktop", 5),
    ("Samsung Internet", "23", "Android", "13", "Tablet", 2),
    ("Mobile Safari", "16", "iOS", "16", "Tablet", 2),
]
COUNTRIES = (
    ["US"] * 30 + ["DE"] * 10 + ["GB"] * 8 + ["FR"] * 7 + ["IN"] * 8 + ["BR", "JP", "CA"] * 4
)
CITIES = {"US": ("CA", "San Francisco"), "DE": ("BE", "Berlin"), "FR": ("IDF", "Paris")}
SOURCES = [
    # (source, referrer or None, weight)
    ("Direct / None", None, 40),
    ("Google", "https://www.google.com/", 30),
    ("Bing", "https://www.bing.com/", 4),
    ("DuckDuckGo", "https://duckduckgo.com/", 3),
    ("Twitter", "https://t.co/abc", 4),
    ("Reddit", "https://www.reddit.com/r/selfhosted/comments/1", 3),
    ("Hacker News", "https://news.ycombinator.com/item", 3),
    ("GitHub", "https://github.com/example/project", 3),
    ("blog.example.org", "https://blog.example.org/post/self-hosted-analytics", 2),
]
CAMPAIGNS = [("newsletter", "email", "winter-sale"), ("twitter", "social", "launch")]
PLANS = ["free", "pro", "team"]
EVENTS_PER_VISIT = 4


def visit_length(rng: random.Random) -> int:
    """Events in one visit: geometric, mean :data:`EVENTS_PER_VISIT` (a third bounce-ish)."""
    n = 1
    while rng.random() > 1 / EVENTS_PER_VISIT:
        n += 1
    return n


def _weighted(rng: random.Random, rows: list[tuple[object, ...]]) -> tuple[object, ...]:
    return rng.choices(rows, weights=[int(str(r[-1])) for r in rows])[0]


@functools.cache
def profile(visitor: int) -> dict[str, str]:
    """The device and place of one visitor (fixed per visitor)."""
    rng = random.Random(visitor)
    browser, version, os_name, os_version, device, _ = _weighted(rng, DEVICES)  # type: ignore[misc]
    country = rng.choice(COUNTRIES)
    dims = {
        "browser": str(browser),
        "browser_version": str(version),
        "os": str(os_name),
        "os_version": str(os_version),
        "device": str(device),
        "country": country,
    }
    if country in CITIES and rng.random() < 0.5:
        dims["region"], dims["city"] = CITIES[country]
    return dims


def visit_dims(rng: random.Random, visitor: int) -> dict[str, str]:
    """The dimensions a visit of ``visitor`` would open with."""
    dims = dict(profile(visitor))
    if rng.random() < 0.1:
        utm_source, medium, campaign = rng.choice(CAMPAIGNS)
        dims.update(source=utm_source, utm_source=utm_source, utm_medium=medium)
        dims["utm_campaign"] = campaign
        return dims
    source, referrer, _ = _weighted(rng, SOURCES)  # type: ignore[misc]
    dims["source"] = str(source)
    if referrer is not None:
        dims["referrer"] = str(referrer)
    return dims


def props_for(rng: random.Random, event_type: str) -> dict[str, str] | None:
    if event_type == "click":
        return {"button": rng.choice(["buy", "subscribe", "menu", "share"])}
    if event_type == "signup":
        return {"plan": rng.choice(PLANS), "trial": rng.choice(["true", "false"])}
    return None


def sessionized(
    rng: random.Random, events: Iterable[tuple[datetime, Event, int]]
) -> list[tuple[datetime, bytes]]:
    """Wire messages of ``events`` (time, event, visitor number) in time order, each with
    its visit, or marked as a bot for ~1% of them."""
    sessions = Sessionizer(random.Random(rng.random()))
    out = []
    for when, event, visitor in sorted(events, key=lambda item: item[0]):
        if rng.random() < 0.01:
            out.append(
                (
                    when,
                    Event(
                        event.site_id, event.event_type, event.path, None, when, bot=True
                    ).to_wire(),
                )
            )
            continue
        event = Event(
            event.site_id,
            event.event_type,
            event.path,
            event.user_id,
            when,
            props=props_for(rng, event.event_type),
        )
        out.append((when, sessions.visit(event, str(visitor), visit_dims(rng, visitor)).to_wire()))
    return out
