"""What the browser is told: security headers; the client's address behind proxies.

``X-Forwarded-For`` is believed only from the peers of ``FORWARDED_ALLOW_IPS`` (the
rule of :mod:`webapp.enrich.address`), so a client cannot claim another address; the
scheme and host are settled before Flask runs (:mod:`webapp.proxy`), so
``request.is_secure`` and ``request.host_url`` already say what the browser used.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

from webapp.enrich.address import ForwardedAllow, client_address

EXTENSION = "forwarded_allow"

# Only the app's own files: no inline script or style, no framing, no plugins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Pages whose URL holds a secret never send it in a Referer: a share link's page sends
# none at all; the one-time sign-in page sends its origin only, which its own form's POST
# needs over HTTPS (Flask-WTF refuses a form posted without a Referer of this host there).
SECRET_URL_POLICIES = {"auth.share_page": "no-referrer", "auth.login_once": "strict-origin"}


def forwarded_allow_of(app: Flask) -> ForwardedAllow:
    found: ForwardedAllow = app.extensions[EXTENSION]
    return found


def forwarded_allow() -> ForwardedAllow:
    return forwarded_allow_of(current_app)


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
    if request.endpoint in SECRET_URL_POLICIES:
        defaults["Referrer-Policy"] = SECRET_URL_POLICIES[request.endpoint]
    for name, value in defaults.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response
