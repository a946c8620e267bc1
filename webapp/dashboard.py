"""The dashboard page at ``/`` and the embeddable tracker script at ``/tracker.js``.

Both views are plain sync functions that do no I/O per request: the server runs Flask views on
the asyncio event loop, so the tracker source is read once at import time and the template is
compiled once and cached by Jinja.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Blueprint, Response, render_template, request

from webapp import cors

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

_STATIC = Path(__file__).resolve().parent / "static"
_TRACKER_SOURCE: bytes = (_STATIC / "tracker.js").read_bytes()
_TRACKER_ETAG: str = hashlib.sha256(_TRACKER_SOURCE).hexdigest()[:16]


@bp.get("/")
def index() -> str:
    """Render the dashboard; everything it shows is fetched by the page from the JSON API."""
    return render_template("dashboard.html")


@bp.get("/tracker.js")
def tracker_js() -> Response:
    """Serve the tracker snippet that sites embed with ``<script defer src=".../tracker.js">``."""
    if _TRACKER_ETAG in request.if_none_match:
        resp = Response(status=304)
    else:
        resp = Response(_TRACKER_SOURCE, mimetype="application/javascript")
        resp.headers["Content-Type"] = "application/javascript; charset=utf-8"
    resp.set_etag(_TRACKER_ETAG)
    # Embedded on third-party pages: cache for an hour, revalidate cheaply with the ETag.
    resp.headers["Cache-Control"] = "public, max-age=3600"
    # The script is loaded cross-origin by <script src>; allow it to be fetched by any origin too.
    return cors.allow(resp, cors.ANY_ORIGIN)
