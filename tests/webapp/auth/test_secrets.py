"""Keys and share links: shown once, stored hashed, revocable at once; hostile names inert."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from db.engine import create_engine
from db.models import api_keys, auth_sessions, rollup_sites, share_links
from tests.webapp.auth.conftest import World, csrf_token, sign_in
from webapp.auth import passwords


async def _dump(world: World) -> str:
    """Every stored credential column, as text."""
    engine = create_engine(world.settings)
    try:
        async with engine.connect() as conn:
            rows = [
                *(await conn.execute(select(api_keys))).all(),
                *(await conn.execute(select(share_links))).all(),
                *(await conn.execute(select(auth_sessions))).all(),
            ]
    finally:
        await engine.dispose()
    return repr(rows)


async def test_key_is_shown_once_and_stored_hashed(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, "alice@example.com")
    token = await csrf_token(web, "/settings/keys")
    created = await web.post("/settings/keys", data={"name": "ci", "csrf_token": token})
    key = re.search(r'<code id="new-key">([^<]+)</code>', created.text)
    assert key
    secret = key.group(1)
    listing = (await web.get("/settings/keys")).text
    assert secret not in listing and secret[:11] in listing
    stored = await _dump(world)
    for value in (secret, *world.keys.values(), *world.shares.values()):
        assert value not in stored and value[12:] not in stored
    web.cookies.clear()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await web.get("/stats?site_id=site-a", headers=bearer)).status_code == 200


async def test_revoked_key_stops_at_once(web: httpx.AsyncClient, world: World) -> None:
    bearer = {"Authorization": f"Bearer {world.keys['alice']}"}
    assert (await web.get("/stats?site_id=site-a", headers=bearer)).status_code == 200
    await sign_in(web, "alice@example.com")
    page = (await web.get("/settings/keys")).text
    key_id = re.findall(r"/settings/keys/(\d+)/revoke", page)[0]
    token = await csrf_token(web, "/settings/keys")
    assert (
        await web.post(f"/settings/keys/{key_id}/revoke", data={"csrf_token": token})
    ).is_success
    web.cookies.clear()
    assert (await web.get("/stats?site_id=site-a", headers=bearer)).status_code == 401


async def test_someone_elses_key_cannot_be_revoked(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, "bob@example.com")
    token = await csrf_token(web, "/settings/keys")
    assert (
        await web.post("/settings/keys/1/revoke", data={"csrf_token": token})
    ).status_code == 404


async def test_share_link_revocation_is_immediate(web: httpx.AsyncClient, world: World) -> None:
    share = {"X-Share-Token": world.shares["site-a"]}
    assert (await web.get("/stats?site_id=site-a", headers=share)).status_code == 200
    await sign_in(web, "alice@example.com")
    token = await csrf_token(web, "/settings/sites")
    assert (await web.post("/settings/sites/site-a/unshare", data={"csrf_token": token})).is_success
    web.cookies.clear()
    assert (await web.get("/stats?site_id=site-a", headers=share)).status_code == 401
    assert (await web.get(f"/share/{world.shares['site-a']}")).status_code == 404


async def test_only_the_owner_shares_a_site(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, "bob@example.com")
    token = await csrf_token(web, "/settings/sites")
    assert (
        await web.post("/settings/sites/site-a/share", data={"csrf_token": token})
    ).status_code == 404


async def test_sites_with_data_are_not_claimable(web: httpx.AsyncClient, world: World) -> None:
    """A non-admin cannot register a name that already has events (and so read them)."""
    engine = create_engine(world.settings)
    async with engine.begin() as conn:
        await conn.execute(rollup_sites.insert().values(site_id="busy", events=5))
    await engine.dispose()
    await sign_in(web, "bob@example.com")
    token = await csrf_token(web, "/settings/sites")
    answer = await web.post("/settings/sites", data={"site_id": "busy", "csrf_token": token})
    assert answer.status_code == 400
    assert (await web.get("/stats?site_id=busy")).status_code == 404


async def test_hostile_site_names_are_inert(web: httpx.AsyncClient, world: World) -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    await sign_in(web, "bob@example.com")
    token = await csrf_token(web, "/settings/sites")
    page = await web.post("/settings/sites", data={"site_id": hostile, "csrf_token": token})
    assert page.status_code == 200
    assert hostile not in page.text and "&lt;script&gt;" in page.text


def test_the_unknown_accounts_twin_hash_is_current() -> None:
    """The dummy hash an unknown account's password is checked against is written out,
    not made at import; it must carry the hasher's parameters (else every process would
    hash it anew at start, and checking against it would not cost what a real check does)."""
    assert not passwords._hasher.check_needs_rehash(passwords._written_dummy)
    assert passwords._written_dummy == passwords._DUMMY
    assert passwords._hasher.verify(passwords._DUMMY, passwords._DUMMY_PASSWORD)
    assert not passwords.verify(None, passwords._DUMMY_PASSWORD)  # no account: never a match
