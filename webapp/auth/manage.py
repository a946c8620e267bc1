"""The signed-in user's pages: sites (add, tracker snippet, share links) and API keys.

New secrets (a key, a share URL) are shown once, in the answer to the form that made
them; only their hashes are stored.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from db import accounts
from db.limits import SITE_ID_MAX
from db.models import rollup_sites
from webapp.auth import access
from webapp.auth.tokens import Kind, display_prefix, new_secret
from webapp.errors import HTTPError
from webapp.resources import resources

bp = Blueprint("manage", __name__)

KEY_NAME_MAX = 100


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status, mimetype="text/html")


async def visible_sites(user: accounts.User) -> list[str]:
    """The sites ``user`` reads: admins every registered site and every site with data."""
    async with resources().sessions() as s:
        if not user.is_admin:
            return sorted(await accounts.sites_of(s, user))
        registered = {site for site, _ in await accounts.registered_sites(s)}
        seen = set((await s.execute(select(rollup_sites.c.site_id))).scalars())
    return sorted(registered | seen)


async def _managed(user: accounts.User, site_id: str) -> None:
    """404 unless ``user`` may manage ``site_id``'s share links (its owner, or an admin)."""
    async with resources().sessions() as s:
        owners = dict(await accounts.registered_sites(s))
    if not (user.is_admin or (site_id in owners and owners[site_id] == user.email)):
        raise HTTPError(404, "site not found")


async def _sites_page(status: int = 200, **context: object) -> Response:
    user: accounts.User = g.user
    site_ids = await visible_sites(user)
    async with resources().sessions() as s:
        owners = dict(await accounts.registered_sites(s))
        shares = await accounts.live_shares(s, site_ids)
    rows = [{"id": i, "owner": owners.get(i), "shares": shares.get(i, [])} for i in site_ids]
    return _page("sites.html", status, user=user, sites=rows, origin=request.host_url, **context)


@bp.get("/settings/sites")
async def sites_page() -> Response:
    return await _sites_page()


async def _check_new_site(user: accounts.User, site_id: str) -> str | None:
    if not site_id or len(site_id) > SITE_ID_MAX:
        return f"A site name has 1 to {SITE_ID_MAX} characters."
    async with resources().sessions() as s:
        seen = (
            await s.execute(select(rollup_sites.c.site_id).where(rollup_sites.c.site_id == site_id))
        ).first()
    if seen is not None and not user.is_admin:
        # Its events are someone's: only an admin may hand them to an owner.
        return "Events were already received for this name: ask an admin to register it."
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
    async with resources().sessions() as s:
        keys = await accounts.list_keys(s, user)
    sites = await visible_sites(user)
    return _page("keys.html", status, user=user, keys=keys, sites=sites, **context)


@bp.get("/settings/keys")
async def keys_page() -> Response:
    return await _keys_page()


@bp.post("/settings/keys")
async def create_key() -> Response:
    user: accounts.User = g.user
    name = request.form.get("name", "").strip()[:KEY_NAME_MAX] or "key"
    wanted = set(request.form.getlist("sites"))
    if not wanted <= set(await visible_sites(user)):
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
