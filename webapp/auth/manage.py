"""The signed-in user's pages: sites (add, tracker snippet, share links) and API keys.

New secrets (a key, a share URL) are shown once, in the answer to the form that made
them; only their hashes are stored. Every list of sites here is searchable and read a
page at a time (:mod:`db.sitelist`): anyone can send events for made-up names, so an
admin's list is as long as senders make it, and a page stays under 200 KB whatever it is.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from db import accounts, sitelist
from db.limits import SITE_ID_MAX
from db.models import rollup_sites
from webapp.auth import access
from webapp.auth.tokens import Kind, display_prefix, new_secret
from webapp.errors import HTTPError
from webapp.resources import resources

bp = Blueprint("manage", __name__)

KEY_NAME_MAX = 100
# Rows of the sites page: 20 rows of the longest names (255 four-byte characters, each
# name in three URLs) stay under 200 KB.
SITES_PAGE = 20
# Share links listed per site (the others are revoked with "Revoke all").
SHARES_SHOWN = 5
# Sites offered on the keys page (search for the others); sites listed per key.
KEY_SITES_SHOWN = 50
KEY_SCOPE_SHOWN = 10
# Sites a user who is not an admin may own: registrations are what every process keeps
# in memory (db.registry), so no account may make them without end.
MAX_OWNED = 100


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status, mimetype="text/html")


async def _readable(user: accounts.User) -> set[str] | None:
    """The names ``user`` reads (None for an admin: every site)."""
    if user.is_admin:
        return None
    async with resources().sessions() as s:
        return await accounts.sites_of(s, user)


async def _managed(user: accounts.User, site_id: str) -> None:
    """404 unless ``user`` may manage ``site_id``'s share links (its owner, or an admin)."""
    async with resources().sessions() as s:
        owner = (await accounts.owners(s, [site_id])).get(site_id)
    if not (user.is_admin or owner == user.email):
        raise HTTPError(404, "site not found")


def _search() -> str:
    return request.args.get("q", "").strip()[:SITE_ID_MAX]


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return min(int(raw), 100_000) if raw.isdigit() and raw.isascii() and int(raw) > 0 else 1


async def _sites_page(status: int = 200, **context: object) -> Response:
    """One page of the sites the user reads, searchable (``q``), ``page`` by ``page``."""
    user: accounts.User = g.user
    query, number = _search(), _page_number()
    readable = await _readable(user)
    async with resources().sessions() as s:
        found = await sitelist.with_events(
            s,
            readable=readable,
            registered_too=True,
            query=query,
            offset=(number - 1) * SITES_PAGE,
            limit=SITES_PAGE,
        )
        site_ids = [row["site_id"] for row in found.rows]
        owners = await accounts.owners(s, site_ids)
        shares = await accounts.live_shares(s, site_ids)
    rows = [{"id": i, "owner": owners.get(i), "shares": shares.get(i, [])} for i in site_ids]
    return _page(
        "sites.html",
        status,
        user=user,
        sites=rows,
        origin=request.host_url,
        query=query,
        number=number,
        more=found.more,
        shares_shown=SHARES_SHOWN,
        **context,
    )


@bp.get("/settings/sites")
async def sites_page() -> Response:
    return await _sites_page()


async def _check_new_site(user: accounts.User, site_id: str) -> str | None:
    if not site_id or len(site_id) > SITE_ID_MAX:
        return f"A site name has 1 to {SITE_ID_MAX} characters."
    if user.is_admin:
        return None  # an admin may hand a name's events to an owner
    res = resources()
    async with res.sessions() as s:
        stored = await s.scalar(
            select(rollup_sites.c.site_id).where(rollup_sites.c.site_id == site_id)
        )
        owned = await accounts.count_owned(s, user)
    # Its events are someone's, stored or still on their way (queued, in flight).
    if stored is not None or await res.queue.pending_events(site_id):
        return "Events were already received for this name: ask an admin to register it."
    if owned >= MAX_OWNED:
        return f"You own {MAX_OWNED} sites already: ask an admin to register more."
    return None


@bp.post("/settings/sites")
async def add_site() -> Response:
    user: accounts.User = g.user
    site_id = request.form.get("site_id", "").strip()
    error = await _check_new_site(user, site_id)
    if error is None:
        try:
            async with resources().sessions.begin() as s:
                await accounts.register_site(s, site_id, user)
        except accounts.AccountError:
            error = "This site name is taken."
    if error is not None:
        return await _sites_page(400, error=error)
    return await _sites_page(notice=f"Site {site_id} added.")


@bp.post("/settings/sites/<path:site_id>/share")
async def share(site_id: str) -> Response:
    await _managed(g.user, site_id)
    token = new_secret(Kind.SHARE)
    try:
        async with resources().sessions.begin() as s:
            await accounts.create_share(
                s, site_id, display_prefix(token), access.hashed(Kind.SHARE, token)
            )
    except accounts.AccountError:
        return await _sites_page(400, error=f"Register {site_id} before sharing it.")
    url = request.host_url.rstrip("/") + "/share/" + token
    return await _sites_page(new_share=url, new_share_site=site_id)


@bp.post("/settings/sites/<path:site_id>/unshare")
async def unshare(site_id: str) -> Response:
    await _managed(g.user, site_id)
    async with resources().sessions.begin() as s:
        await accounts.revoke_shares(s, site_id, request.form.get("prefix") or None)
    return await _sites_page(notice=f"Share link of {site_id} revoked.")


async def _keys_page(status: int = 200, **context: object) -> Response:
    user: accounts.User = g.user
    query = _search()
    readable = await _readable(user)
    async with resources().sessions() as s:
        keys = await accounts.list_keys(s, user)
        sites = await sitelist.registered(
            s, readable=readable, query=query, limit=KEY_SITES_SHOWN + 1
        )
    return _page(
        "keys.html",
        status,
        user=user,
        keys=keys,
        sites=sites[:KEY_SITES_SHOWN],
        more_sites=len(sites) > KEY_SITES_SHOWN,
        query=query,
        scope_shown=KEY_SCOPE_SHOWN,
        **context,
    )


@bp.get("/settings/keys")
async def keys_page() -> Response:
    return await _keys_page()


@bp.post("/settings/keys")
async def create_key() -> Response:
    user: accounts.User = g.user
    name = request.form.get("name", "").strip()[:KEY_NAME_MAX] or "key"
    wanted = set(request.form.getlist("sites"))
    if len(wanted) > MAX_OWNED:
        return await _keys_page(400, error=f"A key is limited to at most {MAX_OWNED} sites.")
    async with resources().sessions() as s:
        known = await sitelist.registered(
            s, readable=await _readable(user), names=wanted, limit=len(wanted) + 1
        )
    if set(known) != wanted:
        return await _keys_page(400, error="A key can only be limited to sites you read.")
    secret = new_secret(Kind.API_KEY)
    async with resources().sessions.begin() as s:
        await accounts.create_key(
            s, user, name, display_prefix(secret), access.hashed(Kind.API_KEY, secret), wanted
        )
    return await _keys_page(new_key=secret)


@bp.post("/settings/keys/<int:key_id>/revoke")
async def revoke_key(key_id: int) -> Response:
    async with resources().sessions.begin() as s:
        done = await accounts.revoke_key(s, key_id, g.user)
    if not done:
        raise HTTPError(404, "key not found")
    return await _keys_page(notice="Key revoked.")
