"""Every route of the app, classified once; one hook applies the class before the view runs.

* ``PUBLIC``: ingestion, preflights, the tracker, health, static files, the OpenAPI
  document and the sign-in pages: open to anyone, as in every analytics tool.
* ``READ_API``: the JSON data calls. No credential: ``401`` with
  ``WWW-Authenticate: Bearer``; a ``site_id`` the credential does not cover: ``404``
  (the answer for a site that does not exist, so nothing is revealed).
* ``READ_PAGE``: the dashboard. No credential: a redirect to the sign-in page.
* ``ACCOUNT``: the pages that manage sites, keys, links and the account: a signed-in
  session only (never a key or a share link).
* ``METRICS``: ``/metrics`` for Prometheus: a client in ``METRICS_ALLOW_IPS`` or with
  ``METRICS_TOKEN``, else ``403`` (no account can open it: scrapers have none).

An endpoint in none of them is refused (fail closed), and a test checks that every
route of the app is classified, so a view added later cannot be open by mistake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

from flask import Response, current_app, g, redirect, request

from webapp import metrics
from webapp.auth import access
from webapp.errors import HTTPError

log = logging.getLogger("webapp")

PUBLIC = frozenset(
    {
        "ingest.post_event",
        "ingest.post_events",
        "ingest.event_preflight",
        "api.healthz",
        "api.readyz",
        "dashboard.tracker_js",
        "dashboard.static",
        "static",
        "openapi.openapi_document",
        "auth.login",
        "auth.login_once",
        "auth.share_page",
    }
)
READ_API = frozenset(
    {
        "api.get_stats",
        "api.get_event_types",
        "api.get_timeseries",
        "api.get_sites",
        "api.live",
        "visitors.get_aggregate",
        "visitors.get_breakdown",
    }
)
READ_PAGE = frozenset({"dashboard.index"})
ACCOUNT = frozenset(
    {
        "auth.logout",
        "auth.account",
        "manage.sites_page",
        "manage.add_site",
        "manage.share",
        "manage.unshare",
        "manage.keys_page",
        "manage.create_key",
        "manage.revoke_key",
    }
)
METRICS = frozenset({"metrics.metrics"})
CLASSIFIED = PUBLIC | READ_API | READ_PAGE | ACCOUNT | METRICS

NOT_FOUND = "site not found"


def unauthorized(message: str) -> HTTPError:
    return HTTPError(401, message, {"WWW-Authenticate": 'Bearer realm="analytics"'})


def to_login() -> Response:
    target = request.full_path if request.query_string else request.path
    return redirect("/login?next=" + quote(target, safe="/"), 303)  # type: ignore[return-value]


async def _read_api() -> None:
    try:
        who = await access.principal()
    except access.BadCredential as exc:
        raise unauthorized(str(exc)) from None
    if who is None:
        raise unauthorized("sign in, or send Authorization: Bearer <API key>")
    site_id = request.args.get("site_id")
    if site_id and not who.can_read(site_id):
        raise HTTPError(404, NOT_FOUND)
    if not site_id and request.endpoint == "api.live" and not who.reads_everything:
        # The whole system's live counts are for those who read every site.
        raise HTTPError(404, NOT_FOUND)


def check() -> Response | None:
    """The before-request hook: let the request through, or answer instead of the view.

    Synchronous, so that a public request (every ``POST /event``) costs a set lookup and
    no switch into the event loop; only protected endpoints run the async checks.
    """
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC:  # None: routing fails (404/405) by itself
        return None
    protected: Callable[[str], Response | None] = current_app.ensure_sync(_check_protected)
    return protected(endpoint)


async def _check_protected(endpoint: str) -> Response | None:
    if endpoint in READ_API:
        await _read_api()
        return None
    if endpoint in READ_PAGE:
        try:
            who = await access.principal()
        except access.BadCredential:
            who = None
        await access.session_user()  # the account links, also with PUBLIC_STATS=true
        return None if who is not None else to_login()
    if endpoint in ACCOUNT:
        g.user = await access.session_user()
        return None if g.user is not None else to_login()
    if endpoint in METRICS:
        metrics.check_access()
        return None
    log.error("endpoint %r has no access rule; refused", endpoint)
    raise HTTPError(403, "forbidden")
