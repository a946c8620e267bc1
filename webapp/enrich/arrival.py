"""An accepted event's enrichment: its path, visitor and visit dimensions, or bot flag.

Pure (no I/O): the caller passes the request's client address and User-Agent and the
day's salts. What comes out is what may be queued and stored (see the package
docstring): the address and the User-Agent leave only as the salted visitor id, the
country, region and city, and the browser, OS and device class; the page URL and the
referrer only as the path, the source, the referring page without its query string
and the five ``utm_*`` values. The event returned has its raw ``url``, ``referrer``
and ``screen_width`` cleared.
"""

from __future__ import annotations

import dataclasses

from asyncworker.queue import Arrival
from db.event import Event
from db.limits import LABEL_MAX
from db.rollups import digest
from webapp.enrich.agent import device_class, parse_user_agent
from webapp.enrich.bots import is_bot
from webapp.enrich.geo import GeoDatabase, country_of
from webapp.enrich.sources import source_of
from webapp.enrich.urls import UTM_KEYS, PageUrl, split_page_url
from webapp.enrich.visitor import visitor_hash


@dataclasses.dataclass(frozen=True, slots=True)
class Salts:
    """Today's visitor salt and yesterday's (None once it is deleted)."""

    today: bytes
    yesterday: bytes | None


def _dimensions(
    event: Event,
    page: PageUrl | None,
    address: str | None,
    user_agent: str,
    geo: GeoDatabase | None,
) -> dict[str, str]:
    """The visit dimensions of an event that would open a visit (empty ones left out)."""
    host = page.host if page is not None else None
    utm = {key: getattr(page, key) for key in UTM_KEYS} if page is not None else {}
    source = source_of(event.referrer, utm.get("utm_source"), host)
    device = parse_user_agent(user_agent)
    region, city = geo.region_city(address) if geo is not None else (None, None)
    found: dict[str, str | None] = {
        "source": source.source,
        "referrer": source.referrer,
        **utm,
        "country": country_of(address),
        "region": region,
        "city": city,
        "browser": device.browser,
        "browser_version": device.browser_version,
        "os": device.os,
        "os_version": device.os_version,
        "device": device_class(event.screen_width, device),
    }
    return {
        name: value if name == "referrer" else value[:LABEL_MAX]
        for name, value in found.items()
        if value
    }


def enrich(
    event: Event,
    address: str | None,
    user_agent: str,
    salts: Salts,
    geo: GeoDatabase | None = None,
) -> tuple[Event, Arrival | None]:
    """The event to queue and its visitor's :class:`Arrival`; no arrival for a bot.

    Only tracker events (those with a ``url``) are judged as bots: detectors flag
    curl and HTTP libraries, and server-side senders must never be dropped.
    """
    page = split_page_url(event.url) if event.url is not None else None
    path = event.path if event.path is not None or page is None else page.path
    bot = page is not None and is_bot(user_agent)
    # Built directly (dataclasses.replace costs microseconds on every event).
    queued = Event(
        event.site_id,
        event.event_type,
        path,
        event.user_id,
        event.timestamp,
        event.event_id,
        props=event.props,
        bot=bot,
    )
    if bot:
        return queued, None
    dims = _dimensions(event, page, address, user_agent, geo)
    if event.user_id is not None:
        return queued, Arrival(digest(event.user_id), None, event.user_id, dims)
    site, where = event.site_id, address or ""
    visitor = visitor_hash(salts.today, site, where, user_agent)
    earlier = visitor_hash(salts.yesterday, site, where, user_agent) if salts.yesterday else None
    # The shard comes from the unsalted pair, so yesterday's and today's visit states of
    # one visitor share a slot; it is reduced to a shard number, never stored.
    return queued, Arrival(visitor, earlier, f"{where}\0{user_agent}", dims)
