"""Every reading endpoint against every kind of credential, with the exact status."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from db import accounts
from db.engine import create_engine
from db.settings import Settings
from tests.webapp.auth.conftest import PASSWORD, World, csrf_token, sign_in
from webapp import create_app
from webapp.auth import admin, guard


@pytest.fixture
def private_settings(settings_factory: Callable[..., Settings], database_url: str) -> Settings:
    """This module's matrix runs on MariaDB and on SQLite (the others on SQLite only)."""
    return settings_factory(database_url, PUBLIC_STATS="false")


READS = [
    "/stats?site_id=site-a",
    "/stats/event-types?site_id=site-a",
    "/stats/timeseries?site_id=site-a",
    "/stats/aggregate?site_id=site-a",
    "/stats/breakdown?site_id=site-a&property=source",
    "/live?site_id=site-a",
]


async def _credentials(web: httpx.AsyncClient, world: World, case: str) -> dict[str, str]:
    """Headers for ``case`` (and a session cookie set on ``web`` where the case needs one)."""
    if case == "none":
        return {}
    if case in ("other-site-key", "revoked-key", "key"):
        name = {"other-site-key": "bob", "revoked-key": "revoked", "key": "alice"}[case]
        return {"Authorization": f"Bearer {world.keys[name]}"}
    if case in ("other-share", "share"):
        return {"X-Share-Token": world.shares["site-b" if case == "other-share" else "site-a"]}
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    if case == "signed-out":
        cookie = web.cookies["analytics_session"]
        token = await csrf_token(web, "/account")
        assert (await web.post("/logout", data={"csrf_token": token})).status_code == 303
        web.cookies.set("analytics_session", cookie)  # replay the old cookie
    return {}


CASES = {
    "none": 401,
    "other-site-key": 404,
    "revoked-key": 401,
    "signed-out": 401,
    "other-share": 404,
    "key": 200,
    "session": 200,
    "share": 200,
}


@pytest.mark.parametrize("case", list(CASES))
async def test_every_reading_endpoint(web: httpx.AsyncClient, world: World, case: str) -> None:
    headers = await _credentials(web, world, case)
    for path in READS:
        response = await web.get(path, headers=headers)
        assert response.status_code == CASES[case], (path, response.text)
        if response.status_code == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "error" in response.json()
    sites = await web.get("/sites", headers=headers)
    assert sites.status_code == (401 if CASES[case] == 401 else 200)
    if sites.status_code == 200:
        listed = {row["site_id"] for row in sites.json()["sites"]}
        readable = {"site-a"} if CASES[case] == 200 else {"site-b"}
        assert listed == readable  # never a site the caller cannot read


@pytest.mark.parametrize("case", ["none", "signed-out", "session", "share"])
async def test_dashboard_page(web: httpx.AsyncClient, world: World, case: str) -> None:
    await _credentials(web, world, case)
    if case == "share":
        response = await web.get(f"/share/{world.shares['site-a']}")
        assert response.status_code == 200
        assert response.headers["Referrer-Policy"] == "no-referrer"
        return
    response = await web.get("/?site=site-a")
    if case == "session":
        assert response.status_code == 200
    else:
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/login?next=")


async def test_admin_reads_every_site_and_live(web: httpx.AsyncClient, world: World) -> None:
    assert (await sign_in(web, "root@example.com")).status_code == 303
    listed = {row["site_id"] for row in (await web.get("/sites")).json()["sites"]}
    assert listed == {"site-a", "site-b"}
    assert (await web.get("/live")).status_code == 200
    assert (await web.get("/stats?site_id=anything")).status_code == 200


async def test_whole_system_live_needs_an_admin(web: httpx.AsyncClient, world: World) -> None:
    bearer = {"Authorization": f"Bearer {world.keys['alice']}"}
    assert (await web.get("/live", headers=bearer)).status_code == 404


async def test_malformed_authorization_is_refused(web: httpx.AsyncClient, world: World) -> None:
    for value in ("Basic abc", "Bearer", "Bearer nope", world.keys["alice"]):
        response = await web.get("/stats?site_id=site-a", headers={"Authorization": value})
        assert response.status_code == 401


async def test_open_endpoints_need_nothing(web: httpx.AsyncClient, world: World) -> None:
    for path in ("/healthz", "/tracker.js", "/openapi.json", "/login", "/static/dashboard.css"):
        assert (await web.get(path)).status_code == 200, path
    event = {"site_id": "anything", "event_type": "pageview"}
    assert (await web.post("/event", json=event)).status_code == 202
    assert (await web.options("/event")).status_code == 204


def test_every_route_is_classified() -> None:
    """A route added later without an access rule fails here (and is refused at run time)."""
    app = create_app({"TESTING": True})
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - guard.CLASSIFIED == set()
    assert guard.CLASSIFIED - endpoints == set()  # no stale names
    assert not (guard.PUBLIC & (guard.READ_API | guard.READ_PAGE | guard.ACCOUNT))


async def test_a_viewer_reads_the_sites_it_views(web: httpx.AsyncClient, world: World) -> None:
    engine = create_engine(world.settings)
    async with async_sessionmaker(engine).begin() as s:
        carol = await admin.add_user(s, "carol@example.com", PASSWORD, False)
        await accounts.add_viewer(s, "site-b", carol)
    await engine.dispose()
    await sign_in(web, "carol@example.com")
    assert [r["site_id"] for r in (await web.get("/sites")).json()["sites"]] == ["site-b"]
    assert (await web.get("/stats?site_id=site-b")).status_code == 200
    assert (await web.get("/stats?site_id=site-a")).status_code == 404
