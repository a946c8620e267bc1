"""Sign-in throttling: attempts counted before the check (concurrent ones cannot overrun a
limit), per (account, address), per address and per account, with the device cookie of a
browser that signed in before sparing it from what outsiders do; the current-password
check of /account throttled alike; a busy argon2 thread answered 503 at once.

Requests come from 127.0.0.1, a trusted proxy by default, so ``X-Forwarded-For`` plays
the client's address.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.webapp.auth.conftest import PASSWORD, World, csrf_token, sign_in
from webapp.auth import gate, passwords
from webapp.auth.throttle import DEVICE_COOKIE, PER_ACCOUNT, PER_ADDRESS, PER_PAIR

WRONG = "wrong password!"


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def _try(
    http: httpx.AsyncClient, email: str, password: str, address: str = "198.51.100.1"
) -> httpx.Response:
    """One sign-in attempt (a fresh CSRF token each time) from ``address``."""
    token = await csrf_token(http)
    form = {"email": email, "password": password, "csrf_token": token, "next": "/"}
    return await http.post("/login", data=form, headers=_from(address))


async def test_concurrent_attempts_get_no_more_checks_than_the_limit(
    web: httpx.AsyncClient, world: World
) -> None:
    """The issue: 150-300 concurrent sign-ins got 22-45 checks instead of 10."""
    token = await csrf_token(web)
    form = {"email": "bob@example.com", "password": WRONG, "csrf_token": token}

    async def one() -> int:
        answer = await web.post("/login", data=form, headers=_from("198.51.100.9"))
        return answer.status_code

    statuses = await asyncio.gather(*(one() for _ in range(60)))
    # 401: checked and wrong; 429: refused before any check; 503: the argon2 thread was
    # busy and nothing was checked (the attempt was given back).
    assert set(statuses) <= {401, 429, 503}, statuses
    checked = statuses.count(401)
    assert 1 <= checked <= PER_PAIR
    while (answer := await _try(web, "bob@example.com", WRONG, "198.51.100.9")).status_code != 429:
        assert answer.status_code in (401, 503)
        checked += answer.status_code == 401
    assert checked == PER_PAIR
    assert 0 < int(answer.headers["Retry-After"]) <= 15 * 60


async def test_an_outsider_locks_out_only_its_own_address(
    web: httpx.AsyncClient, world: World
) -> None:
    for _ in range(PER_PAIR):
        assert (await _try(web, "alice@example.com", WRONG, "203.0.113.66")).status_code == 401
    locked = await _try(web, "alice@example.com", PASSWORD, "203.0.113.66")  # even the right one
    assert locked.status_code == 429
    # Alice from her own address, in a browser that never signed in: not locked out.
    assert (await _try(web, "alice@example.com", PASSWORD, "192.0.2.10")).status_code == 303
    web.cookies.clear()
    # An unknown email is throttled the same way (nothing tells which emails exist).
    for _ in range(PER_PAIR):
        assert (await _try(web, "ghost@example.com", WRONG, "203.0.113.66")).status_code == 401
    assert (await _try(web, "ghost@example.com", WRONG, "203.0.113.66")).status_code == 429


async def test_one_address_guessing_many_accounts(web: httpx.AsyncClient, world: World) -> None:
    for i in range(PER_ADDRESS):
        answer = await _try(web, f"user{i}@example.com", WRONG, "203.0.113.7")
        assert answer.status_code == 401
    assert (await _try(web, "alice@example.com", PASSWORD, "203.0.113.7")).status_code == 429
    assert (await _try(web, "alice@example.com", PASSWORD, "203.0.113.8")).status_code == 303


async def test_a_browser_that_signed_in_before_is_never_locked_out_by_others(
    web: httpx.AsyncClient, world: World
) -> None:
    """Many addresses exhaust the account's limit for unknown browsers; the owner's browser
    (its device cookie) still signs in, a new browser waits for the window to end."""
    owner = await _try(web, "alice@example.com", PASSWORD, "192.0.2.10")
    assert owner.status_code == 303
    device = web.cookies[DEVICE_COOKIE]
    assert any(
        c.startswith(DEVICE_COOKIE) and "HttpOnly" in c and "SameSite=Strict" in c
        for c in owner.headers.get_list("set-cookie")
    )
    web.cookies.clear()
    for n in range(PER_ACCOUNT):
        attacker = f"203.0.113.{n // PER_PAIR + 100}"
        assert (await _try(web, "alice@example.com", WRONG, attacker)).status_code == 401
    assert (await _try(web, "alice@example.com", PASSWORD, "192.0.2.99")).status_code == 429
    web.cookies.set(DEVICE_COOKIE, device)
    assert (await _try(web, "alice@example.com", PASSWORD, "192.0.2.99")).status_code == 303
    # Alice's device cookie does not make bob's guesses trusted.
    web.cookies.clear()
    web.cookies.set(DEVICE_COOKIE, device)
    for _ in range(PER_PAIR):
        assert (await _try(web, "bob@example.com", WRONG, "203.0.113.200")).status_code == 401
    assert (await _try(web, "bob@example.com", PASSWORD, "203.0.113.200")).status_code == 429


async def test_a_success_gives_its_attempt_back(web: httpx.AsyncClient, world: World) -> None:
    for _ in range(PER_PAIR - 1):
        assert (await _try(web, "alice@example.com", WRONG)).status_code == 401
    for _ in range(3):
        assert (await _try(web, "alice@example.com", PASSWORD)).status_code == 303
        web.cookies.clear()
    assert (await _try(web, "alice@example.com", WRONG)).status_code == 401
    assert (await _try(web, "alice@example.com", PASSWORD)).status_code == 429


async def test_the_current_password_check_is_throttled(
    web: httpx.AsyncClient, world: World
) -> None:
    """The issue: 14 wrong guesses on /account, then the right one, were all answered."""
    assert (await sign_in(web, "alice@example.com")).status_code == 303
    web.cookies.delete(DEVICE_COOKIE)  # a stolen session, without the owner's browser
    new = "a brand new passphrase"
    for _ in range(PER_PAIR):
        token = await csrf_token(web, "/account")
        form = {"current": WRONG, "new": new, "confirm": new, "csrf_token": token}
        answer = await web.post("/account", data=form)
        assert answer.status_code == 400 and "current password is wrong" in answer.text
    token = await csrf_token(web, "/account")
    form = {"current": PASSWORD, "new": new, "confirm": new, "csrf_token": token}
    locked = await web.post("/account", data=form)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "too many sign-in attempts" in locked.text


async def test_a_busy_argon2_thread_answers_503_at_once(
    web: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempts that pass every limit (many accounts, many addresses) still get at most a
    few checks queued: the others are answered 503 with Retry-After, nothing counted. (The
    line at the door is opened wide here, so that all of them reach the check at once.)"""
    monkeypatch.setattr(gate, "INSIDE", 100)
    monkeypatch.setattr(gate, "PER_SECOND", 1_000_000)
    token = await csrf_token(web)

    async def one(n: int) -> httpx.Response:
        form = {"email": f"u{n}@example.com", "password": WRONG, "csrf_token": token}
        return await web.post("/login", data=form, headers=_from(f"198.51.{n // 200}.{n % 200}"))

    answers = await asyncio.gather(*(one(n) for n in range(40)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) >= 1 and set(statuses) <= {401, 503}, statuses
    busy = [a for a in answers if a.status_code == 503]
    assert len(busy) >= 40 - 2 * (passwords.MAX_WAITING + 1), statuses
    assert all(int(a.headers["Retry-After"]) >= 1 for a in busy)
    assert re.search("too many sign-ins at once", busy[0].text, re.IGNORECASE)


async def test_password_forms_past_a_full_line_are_answered_503_at_once(
    web: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the line's length, the bridge answers before Flask runs (nothing counted)."""
    token = await csrf_token(web)
    monkeypatch.setattr(gate, "WAITING", 0)
    form = {"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
    answer = await web.post("/login", data=form)
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1
    assert answer.json() == {"error": "too many sign-ins at once, retry later"}
    assert (await web.get("/login")).status_code == 200  # only password forms wait in line
    monkeypatch.setattr(gate, "WAITING", 1024)
    assert (await web.post("/login", data=form)).status_code == 303
