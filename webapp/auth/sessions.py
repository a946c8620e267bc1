"""Server-side sessions: a random token in an HttpOnly cookie, only its hash in the database.

Signing out deletes the row; changing the password deletes every row of the user;
a session lives ``SESSION_TTL`` from sign-in. The cookie is ``HttpOnly``,
``SameSite=Lax`` and ``Secure`` whenever the request came over HTTPS (directly or
through a trusted proxy's ``X-Forwarded-Proto``).
"""

from __future__ import annotations

from datetime import timedelta

from flask import request
from werkzeug.wrappers import Response

from db import accounts
from db.accounts import User
from webapp.auth.access import SESSION_COOKIE, hashed
from webapp.auth.headers import is_https
from webapp.auth.tokens import Kind, new_secret
from webapp.resources import resources

SESSION_TTL = timedelta(days=14)


def _set_cookie(response: Response, value: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=is_https(),
        samesite="Lax",
    )


async def start(response: Response, user: User) -> Response:
    """Sign ``user`` in on ``response`` (a new session; any old cookie is replaced)."""
    token = new_secret(Kind.SESSION)
    async with resources().sessions.begin() as s:
        await accounts.delete_expired_sessions(s)
        await accounts.create_session(s, hashed(Kind.SESSION, token), user, SESSION_TTL)
    _set_cookie(response, token, int(SESSION_TTL.total_seconds()))
    return response


async def end(response: Response) -> Response:
    """Sign out: the session row is deleted, the cookie cleared."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with resources().sessions.begin() as s:
            await accounts.delete_session(s, hashed(Kind.SESSION, token))
    _set_cookie(response, "", 0)
    return response
