"""Server-side sessions: a random token in an HttpOnly cookie, only its hash in the database.

Signing out deletes the row; changing the password deletes every row of the user;
a session lives ``SESSION_TTL`` from sign-in. The cookie is ``HttpOnly``,
``SameSite=Lax`` and ``Secure`` whenever the browser used HTTPS (directly, through a
trusted proxy's ``X-Forwarded-Proto``, or as ``PUBLIC_URL`` says: :mod:`webapp.proxy`).

Signing in and out also gives the browser a new CSRF secret (Flask-WTF keeps it in
Flask's signed cookie), so a token planted or read before the change stops passing.
"""

from __future__ import annotations

from datetime import timedelta

from flask import g, request, session
from werkzeug.wrappers import Response

from db import accounts
from db.accounts import User
from webapp.auth.access import SESSION_COOKIE, hashed
from webapp.auth.tokens import Kind, new_secret
from webapp.resources import resources

SESSION_TTL = timedelta(days=14)
# Flask-WTF's name for the CSRF secret in the session and the token in ``g`` (its default).
CSRF_FIELD = "csrf_token"


def _set_cookie(response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=request.is_secure,
        samesite="Lax",
    )


def _new_csrf_secret() -> None:
    """Forget this browser's CSRF secret: the next form rendered gets a new one."""
    session.pop(CSRF_FIELD, None)
    g.pop(CSRF_FIELD, None)


async def start(user: User) -> str:
    """Sign ``user`` in: a new session (its token, for :func:`with_cookie`) and a new CSRF
    secret. Call it before rendering the answer, so that the answer's forms carry the new
    token."""
    token = new_secret(Kind.SESSION)
    async with resources().sessions.begin() as s:
        await accounts.delete_expired_sessions(s)
        await accounts.create_session(s, hashed(Kind.SESSION, token), user, SESSION_TTL)
    _new_csrf_secret()
    return token


def with_cookie(response: Response, token: str) -> Response:
    """``response`` carrying the session cookie of :func:`start` (any old one is replaced)."""
    _set_cookie(response, token, int(SESSION_TTL.total_seconds()))
    return response


async def end(response: Response) -> Response:
    """Sign out: the session row is deleted, the cookie cleared, the CSRF secret renewed."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with resources().sessions.begin() as s:
            await accounts.delete_session(s, hashed(Kind.SESSION, token))
    _new_csrf_secret()
    _set_cookie(response, "", 0)
    return response
