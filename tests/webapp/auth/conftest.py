"""Fixtures for access control: the real app with PUBLIC_STATS=false, and a small world.

The world: an admin (the first user), alice owning ``site-a``, bob owning ``site-b``;
API keys (alice's, a revoked one of alice's, bob's); a share link per site.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from db import accounts
from db.engine import create_engine
from db.schema import init_db
from db.settings import Settings
from webapp import create_app
from webapp.asgi import make_asgi
from webapp.auth import admin

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def private_settings(settings_factory: Callable[..., Settings], sqlite_url: str) -> Settings:
    return settings_factory(sqlite_url, PUBLIC_STATS="false")


@dataclass
class World:
    settings: Settings
    keys: dict[str, str]
    shares: dict[str, str]


async def build_world(settings: Settings) -> World:
    engine = create_engine(settings)
    await init_db(engine)
    secret = settings.require_secret_key()
    try:
        async with async_sessionmaker(engine, expire_on_commit=False).begin() as s:
            await admin.add_user(s, "root@example.com", PASSWORD, False)
            alice = await admin.add_user(s, "alice@example.com", PASSWORD, False)
            bob = await admin.add_user(s, "bob@example.com", PASSWORD, False)
            await accounts.register_site(s, "site-a", alice)
            await accounts.register_site(s, "site-b", bob)
            keys = {
                "alice": await admin.create_key(s, secret, alice, "k", []),
                "revoked": await admin.create_key(s, secret, alice, "old", []),
                "bob": await admin.create_key(s, secret, bob, "k", []),
            }
            revoked_id = max(int(str(k["id"])) for k in await accounts.list_keys(s, alice))
            await accounts.revoke_key(s, revoked_id)
            shares = {site: await admin.share(s, secret, site) for site in ("site-a", "site-b")}
    finally:
        await engine.dispose()
    return World(settings, keys, shares)


@pytest.fixture
async def world(private_settings: Settings) -> World:
    return await build_world(private_settings)


@pytest.fixture
async def web(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The real ASGI app over httpx, cookies kept between requests."""
    asgi = make_asgi(create_app({"SETTINGS": world.settings, "TESTING": True}))
    await asgi.on_startup()  # type: ignore[misc]
    transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await asgi.on_shutdown()  # type: ignore[misc]


async def csrf_token(http: httpx.AsyncClient, path: str = "/login") -> str:
    page = await http.get(path)
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    token = await csrf_token(http)
    return await http.post(
        "/login", data={"email": email, "password": password, "csrf_token": token, "next": "/"}
    )
