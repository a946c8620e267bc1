"""The page an event happened on: host, path and campaign (``utm_*``) parameters.

Only what a report groups by is kept: the path without query or fragment (a query may
carry tokens, e-mail addresses or session ids) and the five ``utm_*`` values, each cut
to 255 characters. Hosts lose ``www.`` so that ``www.example.com`` and ``example.com``
are one site in reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, urlsplit

from db.limits import PATH_MAX

UTM_MAX_CHARS = 255
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Longest DNS name; anything longer is not a host.
_HOST_MAX_CHARS = 253
# C0 controls and DEL: no report needs them and some databases reject NUL in text.
_CONTROLS = dict.fromkeys([*range(0x20), 0x7F])


@dataclass(frozen=True)
class PageUrl:
    """The reportable parts of a page URL; None where the URL had nothing usable."""

    host: str | None
    path: str
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None


def safe_split(url: str) -> SplitResult | None:
    """``urlsplit`` that answers None instead of raising (``http://[::1``, ``http://[x]/``)."""
    try:
        return urlsplit(url.strip())
    except ValueError:
        return None


def clean_host(host: str | None) -> str | None:
    """Lower case, no port, no trailing dot, no leading ``www.``; None when empty or absurd."""
    if not host:
        return None
    host = host.strip().lower().rpartition("@")[2]
    # "[v6]:port" keeps its brackets; "name:port" loses the port.
    host = host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
    host = host.rstrip(".").removeprefix("www.")
    if not host or len(host) > _HOST_MAX_CHARS:
        return None
    return host


def url_host(parts: SplitResult) -> str | None:
    """The cleaned host of a split URL (IPv6 kept in brackets, as a URL writes it)."""
    hostname = parts.hostname
    if hostname and ":" in hostname:
        return f"[{hostname}]"
    return clean_host(hostname)


def clean_text(value: str, limit: int) -> str:
    """``value`` without control characters or surrounding blanks, cut to ``limit``."""
    return value.translate(_CONTROLS).strip()[:limit]


def clean_path(path: str) -> str:
    """A path that starts with ``/``, without control characters, cut to ``PATH_MAX``."""
    path = clean_text(path, PATH_MAX)
    return path if path.startswith("/") else f"/{path}"[:PATH_MAX]


def _utm_values(query: str) -> dict[str, str]:
    """The first non-empty value of each ``utm_*`` key, stripped and cut to 255."""
    found: dict[str, str] = {}
    if "%" not in query and "utm" not in query.lower():
        return found  # no key can be a utm_* one: skip parsing (most page views)
    for key, value in parse_qsl(query, keep_blank_values=False, errors="replace"):
        name = key.strip().lower()
        text = clean_text(value, UTM_MAX_CHARS)
        if name in UTM_KEYS and name not in found and text:
            found[name] = text
    return found


def split_page_url(url: str) -> PageUrl:
    """Split a page URL (absolute, or a bare path); never raises.

    A malformed URL gives ``PageUrl(None, "/")``. The path always starts with ``/`` (an
    empty or relative one gets it), has no control characters and is cut to the
    database's ``PATH_MAX``.
    """
    parts = safe_split(url)
    if parts is None:
        return PageUrl(host=None, path="/")
    return PageUrl(host=url_host(parts), path=clean_path(parts.path), **_utm_values(parts.query))
