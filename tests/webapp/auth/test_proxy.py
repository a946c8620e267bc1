"""Behind a TLS proxy: links, cookies and the CSRF Referer check see the browser's HTTPS and
host, from a proxy of FORWARDED_ALLOW_IPS only (or as PUBLIC_URL says); the CSRF secret is
renewed at sign-in and sign-out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from db.settings import Settings
from tests.webapp.auth.conftest import PASSWORD, World, csrf_token, sign_in
from webapp import create_app
from webapp.asgi import make_asgi

PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "analytics.example"}
SHARE_URL = re.compile(r"(https?://[^/<\"]+)/share/sh_[A-Za-z0-9_-]{43}")


@asynccontextmanager
async def browser(settings: Settings, headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The real app; every request comes from 127.0.0.1 with ``headers`` (a proxy's), over
    plain HTTP as from a TLS proxy: the browser's cookies are kept, ``Secure`` ones too."""
    asgi = make_asgi(create_app({"SETTINGS": settings, "TESTING": True}))
    await asgi.on_startup()  # type: ignore[misc]
    transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
    jar = httpx.Cookies()

    async def keep(response: httpx.Response) -> None:
        for cookie in response.cookies.jar:
            jar.set(cookie.name, cookie.value)
        for line in response.headers.get_list("set-cookie"):
            if "Max-Age=0" in line or "expires=Thu, 01 Jan 1970" in line:
                jar.delete(line.split("=", 1)[0])

    async def send(request: httpx.Request) -> None:
        request.headers.pop("Cookie", None)
        if jar:
            request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())

    try:
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            headers=headers,
            event_hooks={"request": [send], "response": [keep]},
        ) as http:
            yield http
    finally:
        await asgi.on_shutdown()  # type: ignore[misc]


async def _signed_in(http: httpx.AsyncClient, origin: str) -> httpx.Response:
    token = await csrf_token(http)
    form = {"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
    return await http.post("/login", data=form, headers={"Referer": origin + "/login"})


async def _share_url(http: httpx.AsyncClient, origin: str) -> str:
    token = await csrf_token(http, "/settings/sites")
    page = await http.post(
        "/settings/sites/site-a/share",
        data={"csrf_token": token},
        headers={"Referer": origin + "/settings/sites"},
    )
    assert page.status_code == 200, page.text
    found = SHARE_URL.search(page.text)
    assert found, page.text
    assert f'src="{origin}/tracker.js"' in page.text.replace("&#34;", '"')
    return found.group(1)


async def test_links_cookies_and_csrf_see_https_behind_a_trusted_proxy(world: World) -> None:
    async with browser(world.settings, PROXY) as http:
        signed = await _signed_in(http, "https://analytics.example")
        assert signed.status_code == 303, signed.text
        cookies = signed.headers.get_list("set-cookie")
        assert cookies and all("Secure" in c for c in cookies), cookies
        assert await _share_url(http, "https://analytics.example") == "https://analytics.example"
        # The strict Referer check of HTTPS forms is on: no Referer, or another host's, fails.
        token = await csrf_token(http, "/settings/keys")
        for referer in (None, "https://evil.example/settings/keys"):
            headers = {"Referer": referer} if referer else {}
            refused = await http.post(
                "/settings/keys", data={"csrf_token": token, "name": "x"}, headers=headers
            )
            assert refused.status_code == 400, referer


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "HTTPS"},  # uvicorn takes exactly http or https
        {"X-Forwarded-Proto": "https, http"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example/path"},
    ],
)
async def test_malformed_proxy_headers_are_not_believed(
    world: World, headers: dict[str, str]
) -> None:
    async with browser(world.settings, headers) as http:
        origin = "https://testserver" if headers["X-Forwarded-Proto"] == "https" else ""
        signed = await _signed_in(http, origin or "http://testserver")
        assert signed.status_code == 303
        expected = origin or "http://testserver"
        assert await _share_url(http, expected) == expected


async def test_proxy_headers_from_an_untrusted_peer_are_ignored(world: World) -> None:
    settings = world.settings.with_overrides(forwarded_allow_ips="10.0.0.1")
    async with browser(settings, PROXY) as http:
        signed = await _signed_in(http, "http://testserver")
        assert signed.status_code == 303
        assert not any("Secure" in c for c in signed.headers.get_list("set-cookie"))
        assert await _share_url(http, "http://testserver") == "http://testserver"


async def test_public_url_wins(world: World) -> None:
    settings = world.settings.with_overrides(public_url="https://stats.example")
    async with browser(settings, PROXY) as http:
        signed = await _signed_in(http, "https://stats.example")
        assert signed.status_code == 303, signed.text
        assert all("Secure" in c for c in signed.headers.get_list("set-cookie"))
        assert await _share_url(http, "https://stats.example") == "https://stats.example"


async def test_one_time_link_works_over_https(world: World) -> None:
    """Its page sends only its origin as Referer, which the HTTPS form check needs."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from db.engine import create_engine
    from webapp.auth import admin

    engine = create_engine(world.settings)
    async with async_sessionmaker(engine, expire_on_commit=False).begin() as s:
        who = await admin.user(s, "alice@example.com")
        token = await admin.login_link_token(s, world.settings.require_secret_key(), who)
    await engine.dispose()
    async with browser(world.settings, PROXY) as http:
        page = await http.get(f"/login/once/{token}")
        assert page.headers["Referrer-Policy"] == "strict-origin"
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        used = await http.post(
            f"/login/once/{token}",
            data={"csrf_token": csrf.group(1)},
            headers={"Referer": "https://analytics.example/"},
        )
        assert used.status_code == 303 and used.headers["Location"] == "/account"


async def test_csrf_secret_is_renewed_at_sign_in_and_sign_out(
    web: httpx.AsyncClient, world: World
) -> None:
    before = await csrf_token(web)
    planted = web.cookies["analytics_csrf"]
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    assert web.cookies.get("analytics_csrf") != planted
    # A token from before signing in (e.g. planted by an attacker) no longer passes.
    stale = await web.post("/settings/keys", data={"csrf_token": before, "name": "x"})
    assert stale.status_code == 400
    signed_in = await csrf_token(web, "/account")
    assert (await web.post("/logout", data={"csrf_token": signed_in})).status_code == 303
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    again = await web.post("/settings/keys", data={"csrf_token": signed_in, "name": "x"})
    assert again.status_code == 400
