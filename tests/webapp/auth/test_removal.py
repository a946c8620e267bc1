"""Removing a user, a site or a viewer removes every right derived from it, and a name
registered again after a removal is read through no credential issued before.

The issue's reproduction: dave owns ``tmpsite``, carol views it, a share link and carol's
keys exist; dave is removed; bob registers ``tmpsite`` and events arrive. Nothing issued
before (the share link, carol's session, carol's keys) reads bob's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asyncworker.writer import write_batch
from db import accounts
from db.engine import create_engine
from db.event import Event
from db.settings import Settings
from tests.webapp.auth.conftest import World, csrf_token, sign_in
from tests.webapp.test_cli import run_cli
from webapp.auth import admin


@pytest.fixture
def private_settings(settings_factory: Callable[..., Settings], database_url: str) -> Settings:
    """On MariaDB and on SQLite."""
    return settings_factory(database_url, PUBLIC_STATS="false")


async def _store_event(settings: Settings, site_id: str) -> None:
    engine = create_engine(settings)
    try:
        event = Event(site_id, "pageview", "/secret", "u1", datetime.now(timezone.utc), None)
        assert await write_batch(engine, uuid.uuid4().hex, [event])
    finally:
        await engine.dispose()


async def _in_transaction(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[Any]]
) -> Any:
    engine = create_engine(settings)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False).begin() as s:
            return await work(s)
    finally:
        await engine.dispose()


CAROL = ("carol@example.com", "a long enough password")


async def _tmpsite_with_rights(world: World) -> dict[str, str]:
    """dave owns tmpsite; carol views it and site-b; a share link; carol's keys."""
    secret = world.settings.require_secret_key()

    async def work(s: AsyncSession) -> dict[str, str]:
        dave = await admin.add_user(s, "dave@example.com", CAROL[1], False)
        carol = await admin.add_user(s, CAROL[0], CAROL[1], False)
        await accounts.register_site(s, "tmpsite", dave)
        await accounts.add_viewer(s, "tmpsite", carol)
        await accounts.add_viewer(s, "site-b", carol)
        return {
            "share": await admin.share(s, secret, "tmpsite"),
            "limited": await admin.create_key(s, secret, carol, "k", ["tmpsite"]),
            "unscoped": await admin.create_key(s, secret, carol, "all", []),
        }

    found: dict[str, str] = await _in_transaction(world.settings, work)
    return found


async def _reads(
    http: httpx.AsyncClient, headers: dict[str, str], site: str = "tmpsite"
) -> httpx.Response:
    return await http.get(f"/stats?site_id={site}", headers=headers)


async def _sites(http: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    answer = await http.get("/sites", headers=headers)
    assert answer.status_code == 200, answer.text
    return [row["site_id"] for row in answer.json()["sites"]]


async def test_removing_the_owner_leaves_no_access_to_a_name_registered_again(
    web: httpx.AsyncClient, world: World
) -> None:
    creds = await _tmpsite_with_rights(world)
    share = {"X-Share-Token": creds["share"]}
    limited = {"Authorization": f"Bearer {creds['limited']}"}
    unscoped = {"Authorization": f"Bearer {creds['unscoped']}"}
    assert (await sign_in(web, *CAROL)).status_code == 303
    carol = {"Cookie": f"analytics_session={web.cookies['analytics_session']}"}
    web.cookies.clear()
    for headers in (share, limited, unscoped, carol):
        assert (await _reads(web, headers)).status_code == 200

    done = run_cli(
        "users", "remove", "dave@example.com", env={"DATABASE_URL": _url(world.settings)}
    )
    assert done.returncode == 0, done.stderr
    # bob registers the free name from his sites page, and its events arrive.
    assert (await sign_in(web, "bob@example.com")).status_code == 303
    token = await csrf_token(web, "/settings/sites")
    added = await web.post("/settings/sites", data={"site_id": "tmpsite", "csrf_token": token})
    assert added.status_code == 200, added.text
    await _store_event(world.settings, "tmpsite")
    assert (await _reads(web, {})).json()["total_views"] == 1  # bob reads his site
    web.cookies.clear()

    # The old share link is dead (its page too), carol's session and keys do not read it.
    assert (await _reads(web, share)).status_code == 401
    assert (await web.get(f"/share/{creds['share']}")).status_code == 404
    for headers in (limited, unscoped):
        assert (await _reads(web, headers)).status_code == 404
        assert (await web.get("/live?site_id=tmpsite", headers=headers)).status_code == 404
    assert (await _reads(web, carol)).status_code == 404
    assert await _sites(web, carol) == ["site-b"]
    # The key limited to the removed site reads nothing, never everything carol reads.
    assert await _sites(web, limited) == []
    assert (await _reads(web, limited, "site-b")).status_code == 404
    assert await _sites(web, unscoped) == ["site-b"]  # carol's other right stands


def _url(settings: Settings) -> str:
    return settings.database_url.render_as_string(hide_password=False)


async def test_remove_viewer_takes_the_right_and_its_keys_scope(
    web: httpx.AsyncClient, world: World
) -> None:
    creds = await _tmpsite_with_rights(world)
    limited = {"Authorization": f"Bearer {creds['limited']}"}
    env = {"DATABASE_URL": _url(world.settings)}
    done = run_cli("sites", "remove-viewer", "tmpsite", "carol@example.com", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "carol@example.com no longer reads tmpsite (nor do its keys)"
    assert (await _reads(web, limited)).status_code == 404
    assert await _sites(web, limited) == []
    assert (await sign_in(web, *CAROL)).status_code == 303
    assert await _sites(web, {}) == ["site-b"]
    again = run_cli("sites", "remove-viewer", "tmpsite", "carol@example.com", env=env)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: carol@example.com is not a viewer of tmpsite"


async def test_remove_site_takes_every_right_on_it(web: httpx.AsyncClient, world: World) -> None:
    creds = await _tmpsite_with_rights(world)
    env = {"DATABASE_URL": _url(world.settings)}
    done = run_cli("sites", "remove", "tmpsite", env=env)
    assert done.returncode == 0, done.stderr
    assert (await _reads(web, {"X-Share-Token": creds["share"]})).status_code == 401
    assert (await _reads(web, {"Authorization": f"Bearer {creds['limited']}"})).status_code == 404
    listing = run_cli("keys", "list", env=env).stdout
    assert "carol@example.com\tk\t-\t" in listing  # limited to nothing now
    assert "carol@example.com\tall\t*\t" in listing
    # Rights are only ever given on a registered site.
    refused = run_cli("sites", "add-viewer", "tmpsite", "carol@example.com", env=env)
    assert refused.returncode == 1 and "is not registered" in refused.stderr
    refused = run_cli("sites", "share", "tmpsite", env=env)
    assert refused.returncode == 1 and "is not registered" in refused.stderr
