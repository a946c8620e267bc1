"""Where a visit came from: a named source and a display referrer.

The source is the ``utm_source`` the site put in its own links when there is one
(it is the site's explicit statement), else the referrer's site: a well-known name
("Google" for every google.* country domain, "Twitter" for x.com and t.co, ...) or its
host without ``www.``. No referrer, an unparseable one, or one from the page's own host
is "Direct / None", Plausible's label.

Referrers that are not http(s) (``android-app://com.google.android.gm/``,
``ios-app://...``) still name a source by their host, named if well-known, because an
app opening a link is a real source; their display referrer is the host alone, since
their "path" is app routing, not a page. Schemes without a host (``about:blank``,
``file:///``, ``data:``) count as direct.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from db.limits import PATH_MAX
from webapp.enrich.urls import (
    UTM_MAX_CHARS,
    clean_host,
    clean_path,
    clean_text,
    safe_split,
    url_host,
)

DIRECT = "Direct / None"

# Registrable domains (and their subdomains) of the well-known sources.
_NAMED_DOMAINS = {
    "bing.com": "Bing",
    "duckduckgo.com": "DuckDuckGo",
    "yahoo.com": "Yahoo",
    "yahoo.co.jp": "Yahoo",
    "ya.ru": "Yandex",
    "baidu.com": "Baidu",
    "facebook.com": "Facebook",
    "fb.me": "Facebook",
    "instagram.com": "Instagram",
    "twitter.com": "Twitter",
    "x.com": "Twitter",
    "t.co": "Twitter",
    "linkedin.com": "LinkedIn",
    "lnkd.in": "LinkedIn",
    "reddit.com": "Reddit",
    "youtube.com": "YouTube",
    "youtu.be": "YouTube",
    "github.com": "GitHub",
    "news.ycombinator.com": "Hacker News",
    "wikipedia.org": "Wikipedia",
}
# Sources with a domain in many countries: name.tld, name.co.tld, name.com.tld.
_COUNTRY_DOMAINS = re.compile(r"(?:^|\.)(google|yandex)\.(?:com?\.)?[a-z]{2,3}$")
_COUNTRY_NAMES = {"google": "Google", "yandex": "Yandex"}


@dataclass(frozen=True)
class Source:
    """A visit's acquisition: ``source`` always set, ``referrer`` None when direct."""

    source: str
    referrer: str | None = None


def source_name(host: str) -> str:
    """The well-known name for a cleaned host, or the host itself."""
    match = _COUNTRY_DOMAINS.search(host)
    if match:
        return _COUNTRY_NAMES[match.group(1)]
    labels = host.split(".")
    for start in range(len(labels) - 1):
        name = _NAMED_DOMAINS.get(".".join(labels[start:]))
        if name:
            return name
    return host


def _display(referrer: str | None, site_host: str | None) -> tuple[str, str] | None:
    """(host, display) of an external referrer, or None when the visit is direct."""
    parts = safe_split(referrer) if referrer else None
    host = url_host(parts) if parts else None
    if parts is None or host is None or host == clean_host(site_host):
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return host, host
    path = clean_path(parts.path)
    if path != "/":
        path = path.rstrip("/") or "/"
    return host, f"{host}{path}"[:PATH_MAX]


def source_of(referrer: str | None, utm_source: str | None, site_host: str | None) -> Source:
    """The ``Source`` of a page view; never raises, never returns query strings.

    ``site_host`` is the host of the page itself (with or without ``www.`` or a port):
    a referrer from it is navigation inside the site, not a source.
    """
    external = _display(referrer, site_host)
    tagged = clean_text(utm_source, UTM_MAX_CHARS) if utm_source else ""
    if tagged:
        return Source(source=tagged, referrer=external[1] if external else None)
    if external is None:
        return Source(source=DIRECT)
    host, display = external
    return Source(source=source_name(host), referrer=display)
