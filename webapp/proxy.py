"""The scheme and host the browser used, behind trusted proxies or as ``PUBLIC_URL`` says.

Applied by the ASGI bridge to each request's scope before Flask sees it, so every part of
the app agrees on them: share URLs and the tracker snippet (``request.host_url``), the
``Secure`` flag of cookies and Flask-WTF's strict Referer check on HTTPS (both read
``request.is_secure``).

* ``PUBLIC_URL`` set: its scheme and host, whatever the request says.
* Otherwise, from a peer of ``FORWARDED_ALLOW_IPS`` only (the rule of
  :mod:`webapp.enrich.address`): ``X-Forwarded-Proto`` as uvicorn's
  ``ProxyHeadersMiddleware`` reads it (the last such header, stripped, taken only when it
  is exactly ``http`` or ``https``), and ``X-Forwarded-Host`` as Werkzeug's ``ProxyFix``
  with ``x_host=1`` reads it (the last value, the one the nearest proxy set), taken only
  when it is a well-formed ``host[:port]``. uvicorn has no rule for that header.
* From any other peer both headers are ignored: a client cannot claim HTTPS or a host.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webapp.enrich.address import ForwardedAllow

Scope = MutableMapping[str, Any]

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(:[0-9]{1,5})?")
_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class Forwarded:
    """What to believe of a request's scheme and host (built once at start-up)."""

    allow: ForwardedAllow
    public_scheme: str | None = None
    public_host: bytes | None = None

    @classmethod
    def from_settings(cls, allow: ForwardedAllow, public_url: str | None) -> Forwarded:
        if public_url is None:
            return cls(allow)
        parts = urlsplit(public_url)
        return cls(allow, parts.scheme, parts.netloc.encode("latin1"))

    def apply(self, scope: Scope) -> None:
        """Rewrite ``scope``'s scheme and Host header as the browser saw them."""
        if self.public_scheme is not None and self.public_host is not None:
            scope["scheme"] = self.public_scheme
            _set_host(scope, self.public_host)
            return
        client = scope.get("client")
        if not self.allow.trusts(client[0] if client else None):
            return
        proto = _last(scope, b"x-forwarded-proto")
        if proto is not None and proto.strip() in _SCHEMES:
            scope["scheme"] = proto.strip()
        host = _last(scope, b"x-forwarded-host")
        if host is not None:
            nearest = host.rsplit(",", 1)[-1].strip()
            if _HOST.fullmatch(nearest):
                _set_host(scope, nearest.encode("latin1"))


def _last(scope: Scope, name: bytes) -> str | None:
    found = None
    for key, value in scope.get("headers", []):
        if key == name:
            found = value
    return None if found is None else bytes(found).decode("latin1")


def _set_host(scope: Scope, host: bytes) -> None:
    headers = [(k, v) for k, v in scope.get("headers", []) if k != b"host"]
    scope["headers"] = [*headers, (b"host", host)]
