"""What the browser is told: security headers, the client's address and scheme behind proxies.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the peers of
``FORWARDED_ALLOW_IPS`` (the rule of :mod:`webapp.enrich.address`), so a client
cannot claim to be on HTTPS or at another address.
"""

from __future__ import annotations

from flask import current_app, request
from werkzeug.wrappers import Response

from webapp.enrich.address import ForwardedAllow, client_address

EXTENSION = "forwarded_allow"

# Only the app's own files: no inline script or style, no framing, no plugins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Pages whose URL holds a secret (share links, one-time sign-in links) send no Referer at all.
SECRET_URL_ENDPOINTS = frozenset({"auth.share_page", "auth.login_once"})


def forwarded_allow() -> ForwardedAllow:
    found: ForwardedAllow = current_app.extensions[EXTENSION]
    return found


def _trusted_peer() -> bool:
    return forwarded_allow().trusts(request.remote_addr)


def is_https() -> bool:
    if request.scheme == "https":
        return True
    proto = request.headers.get("X-Forwarded-Proto", "")
    return _trusted_peer() and proto.split(",")[0].strip().lower() == "https"


def client() -> str:
    """The client's address for throttling ('unknown' when there is none)."""
    found = client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For"), forwarded_allow()
    )
    return found or "unknown"


# On every answer (the bridge's fast path for POST /event sends them too).
EVERY_ANSWER = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def secure(response: Response) -> Response:
    """After every request: the page headers on HTML, and no caching of pages with secrets."""
    defaults = dict(EVERY_ANSWER)
    if request.endpoint in SECRET_URL_ENDPOINTS:
        defaults["Referrer-Policy"] = "no-referrer"
    for name, value in defaults.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response
