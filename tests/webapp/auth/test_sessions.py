"""Signing in: CSRF, cookie flags, session invalidation, no user enumeration (throttling:
test_throttle.py)."""

from __future__ import annotations

import httpx

from tests.webapp.auth.conftest import CSRF, PASSWORD, World, csrf_token, sign_in


async def test_sign_in_sets_a_strict_cookie(web: httpx.AsyncClient, world: World) -> None:
    response = await sign_in(web, "alice@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "analytics_session" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert (await web.get("/")).status_code == 200


async def test_cookie_is_secure_behind_a_trusted_https_proxy(
    web: httpx.AsyncClient, world: World
) -> None:
    token = await csrf_token(web)
    form = {"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
    # httpx's ASGI client is 127.0.0.1, the default FORWARDED_ALLOW_IPS.
    response = await web.post("/login", data=form, headers={"X-Forwarded-Proto": "https"})
    cookies = response.headers.get_list("set-cookie")
    assert all("Secure" in c for c in cookies), cookies


async def test_unknown_email_and_wrong_password_answer_alike(
    web: httpx.AsyncClient, world: World
) -> None:
    wrong = await sign_in(web, "alice@example.com", "not the password")
    unknown = await sign_in(web, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401

    def page(response: httpx.Response, email: str) -> str:
        return CSRF.sub("", response.text.replace(email, "X"))  # tokens carry a timestamp

    assert page(wrong, "alice") == page(unknown, "nobody")


async def test_forms_without_a_csrf_token_are_refused(web: httpx.AsyncClient, world: World) -> None:
    form = {"email": "alice@example.com", "password": PASSWORD}
    assert (await web.post("/login", data=form)).status_code == 400
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    for path in ("/logout", "/settings/keys", "/settings/sites", "/account"):
        response = await web.post(path, data={"name": "x", "site_id": "x", "csrf_token": "forged"})
        assert response.status_code == 400, path
    assert (await web.get("/")).status_code == 200  # still signed in


async def test_sign_out_ends_the_session(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, "alice@example.com")
    cookie = web.cookies["analytics_session"]
    token = await csrf_token(web, "/account")
    await web.post("/logout", data={"csrf_token": token})
    web.cookies.set("analytics_session", cookie)
    assert (await web.get("/stats?site_id=site-a")).status_code == 401


async def test_password_change_ends_every_other_session(
    web: httpx.AsyncClient, world: World
) -> None:
    await sign_in(web, "alice@example.com")
    other = web.cookies["analytics_session"]
    web.cookies.clear()
    await sign_in(web, "alice@example.com")
    token = await csrf_token(web, "/account")
    new = "a brand new passphrase"
    form = {"current": PASSWORD, "new": new, "confirm": new, "csrf_token": token}
    assert (await web.post("/account", data=form)).status_code == 200
    assert (await web.get("/stats?site_id=site-a")).status_code == 200  # this browser: new session
    web.cookies.clear()
    web.cookies.set("analytics_session", other)
    assert (await web.get("/stats?site_id=site-a")).status_code == 401
    web.cookies.clear()
    assert (await sign_in(web, "alice@example.com", new)).status_code == 303


async def test_next_never_leaves_the_site(web: httpx.AsyncClient, world: World) -> None:
    for target in (
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
    ):
        token = await csrf_token(web)
        form = {"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
        response = await web.post("/login", data={**form, "next": target})
        assert response.headers["Location"] == "/"
        web.cookies.clear()


async def test_pages_carry_security_headers(web: httpx.AsyncClient, world: World) -> None:
    page = await web.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in page.text and " style=" not in page.text
