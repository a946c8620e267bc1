"""Visitor enrichment at the web edge: pure functions, no I/O after start-up.

Privacy rules this package keeps, and that its callers must keep too:

* The client address and the raw User-Agent are inputs only. No function here returns,
  logs or stores either; nothing derived from them leaves except the fields below.
* What may leave: the salted ``visitor_hash`` (unlinkable once the caller drops the
  day's salt), the country code, optional region and city names, browser and OS names
  with major versions, a device class, and the page/referrer fields with query strings
  removed (only the five ``utm_*`` values survive).
* The caches hold User-Agent strings (capped, bounded LRUs) only in process memory and
  only to skip repeated parsing; they are never persisted or exported, and they hold no
  addresses.

Call ``load_rules()`` once at start-up: parsing rules and crawler regexes take about half a
second to load, which must not land on the first request.
"""

from __future__ import annotations

from webapp.enrich import agent, bots
from webapp.enrich.address import ForwardedAllow, client_address, normalize_address
from webapp.enrich.agent import Device, device_class, parse_user_agent
from webapp.enrich.bots import is_bot
from webapp.enrich.geo import GeoDatabase, GeoDatabaseError, country_of
from webapp.enrich.sources import DIRECT, Source, source_of
from webapp.enrich.urls import PageUrl, split_page_url
from webapp.enrich.visitor import visitor_hash

__all__ = [
    "DIRECT",
    "Device",
    "ForwardedAllow",
    "GeoDatabase",
    "GeoDatabaseError",
    "PageUrl",
    "Source",
    "cache_sizes",
    "client_address",
    "country_of",
    "device_class",
    "is_bot",
    "load_rules",
    "normalize_address",
    "parse_user_agent",
    "source_of",
    "split_page_url",
    "visitor_hash",
]


def load_rules() -> None:
    """Load the User-Agent rules and compile the crawler regexes (start-up, ~0.5 s)."""
    agent.load_rules()
    bots.load_rules()


def cache_sizes() -> dict[str, int]:
    """Entries in the per-User-Agent caches, for metrics; each stays ≤ 10,000."""
    return {"user_agent": agent.user_agent_cache_size(), "bot": bots.bot_cache_size()}
