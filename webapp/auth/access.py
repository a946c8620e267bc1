"""Who may read what: the one place that turns a request's credentials into the sites it reads.

A request carries at most one credential, taken in this order:

1. ``Authorization: Bearer <API key>`` (scripts); a header that is present but wrong
   is refused, never passed over for a weaker credential;
2. ``X-Share-Token: <share token>`` (the dashboard opened from a share link sends it
   with each data call): one site, read-only;
3. the ``analytics_session`` cookie (a signed-in browser).

Admins read every site; other users read the sites they own or view; a key limited
to sites reads those among them. With ``PUBLIC_STATS=true`` everyone reads
everything (credentials are then not looked at for reading; the account pages
still need a session).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request

from db import accounts
from db.accounts import User
from db.settings import Settings
from webapp.auth.tokens import Kind, keyed_hash
from webapp.resources import resources

SESSION_COOKIE = "analytics_session"
SHARE_HEADER = "X-Share-Token"


@dataclass(frozen=True)
class Principal:
    """Who is asking: ``kind`` is public, key, share or session."""

    kind: str
    user: User | None = None
    sites: frozenset[str] | None = None  # None: every site

    def can_read(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites

    @property
    def reads_everything(self) -> bool:
        return self.sites is None


PUBLIC = Principal("public")


class BadCredential(Exception):
    """A credential was sent and is not valid (unknown, revoked, malformed)."""


def settings() -> Settings:
    found: Settings = current_app.config["SETTINGS"]
    return found


def hashed(kind: Kind, secret: str) -> str:
    return keyed_hash(settings().require_secret_key(), kind, secret)


async def readable_sites(user: User, scope: frozenset[str] | None = None) -> frozenset[str] | None:
    """The sites ``user`` reads, limited to ``scope`` when given; None for every site."""
    if user.is_admin:
        return scope
    async with resources().sessions() as s:
        own = frozenset(await accounts.sites_of(s, user))
    return own if scope is None else own & scope


def bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise BadCredential("Authorization must be 'Bearer <key>'")
    return value.strip()


async def _from_key(secret: str) -> Principal:
    async with resources().sessions.begin() as s:
        key = await accounts.key_by_hash(s, hashed(Kind.API_KEY, secret))
    if key is None:
        raise BadCredential("invalid or revoked API key")
    return Principal("key", key.user, await readable_sites(key.user, key.sites))


async def _from_share(secret: str) -> Principal:
    async with resources().sessions() as s:
        site_id = await accounts.share_site(s, hashed(Kind.SHARE, secret))
    if site_id is None:
        raise BadCredential("invalid or revoked share link")
    return Principal("share", None, frozenset({site_id}))


async def session_user() -> User | None:
    """The signed-in user of this request's session cookie (cached on ``g``)."""
    if "session_user" not in g:
        token = request.cookies.get(SESSION_COOKIE)
        user = None
        if token:
            async with resources().sessions.begin() as s:
                user = await accounts.session_user(s, hashed(Kind.SESSION, token))
        g.session_user = user
    found: User | None = g.session_user
    return found


async def principal() -> Principal | None:
    """Who this request reads as (cached on ``g``); None without a credential.

    Raises :class:`BadCredential` for a key or share token that is sent but not valid.
    """
    if "principal" in g:
        found: Principal | None = g.principal
        return found
    if settings().public_stats:
        g.principal = PUBLIC
        return PUBLIC
    key = bearer()
    share = request.headers.get(SHARE_HEADER)
    result: Principal | None
    if key is not None:
        result = await _from_key(key)
    elif share:
        result = await _from_share(share)
    elif (user := await session_user()) is not None:
        result = Principal("session", user, await readable_sites(user))
    else:
        result = None
    g.principal = result
    return result


def listing_scope() -> tuple[frozenset[str] | None, bool]:
    """What ``/sites`` lists for this request: the names it may read (None: every site)
    and whether registered sites without events are listed too (not for the public view
    of PUBLIC_STATS, which lists sites with events, as before accounts existed)."""
    who: Principal | None = g.get("principal")
    if who is None or who.kind == "public":
        return None, False
    return who.sites, True
