"""Access control: accounts, sessions, API keys and share links (see README, Access control).

``init_app`` wires it into the Flask app: the pages' blueprints, the one access
hook (:mod:`webapp.auth.guard`), CSRF protection (Flask-WTF) on every form, the
security headers, and the cookie settings.
"""

from __future__ import annotations

from flask import Flask, Request, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from db.settings import Settings
from webapp.auth import guard, headers, manage, views
from webapp.enrich.address import ForwardedAllow


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie (it only holds the CSRF secret), ``Secure`` on HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return isinstance(request, Request) and request.is_secure


def _template_context() -> dict[str, object]:
    who = g.get("principal")
    return {
        "current_user": g.get("session_user") or g.get("user"),
        # Whether the page may ask for the whole system's live counts (/live with no site).
        "reads_all": who is not None and who.reads_everything,
    }


def init_app(app: Flask, settings: Settings) -> None:
    # Checked at start-up (webapp.resources, `analytics web`): importing the app needs no key.
    app.secret_key = settings.secret_key
    app.config.update(
        SESSION_COOKIE_NAME="analytics_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # The CSRF token lives as long as the browser's csrf cookie: a dashboard left
        # open for a day can still sign out.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = _SessionCookies()
    app.extensions[headers.EXTENSION] = ForwardedAllow.parse(settings.forwarded_allow_ips)
    app.register_blueprint(views.bp)
    app.register_blueprint(manage.bp)
    csrf = CSRFProtect(app)
    app.before_request(guard.check)
    app.context_processor(_template_context)
    app.after_request(headers.secure)

    from webapp import ingest

    # Ingestion is posted to by other sites, with no cookie.
    csrf.exempt(ingest.bp)
