"""Sign-in throttling: every attempt counted in Redis before its password is checked.

An attempt (on ``/login``, or on ``/account``'s current-password check) is counted by one
Redis script that checks every limit and counts on every counter, or refuses (``429``
with ``Retry-After``) without counting: concurrent attempts cannot get more checks than
the limits. A success gives its attempt back, as does a check that never ran (the
argon2 thread was busy), so the counters count wrong passwords and checks under way.

Who is counted where, so that an outsider can slow guessing down but not lock an owner
out (OWASP's "device cookies", from its Authentication Cheat Sheet):

* a browser that signed in to the account before holds a *device cookie* for it (a
  random nonce and its HMAC under SECRET_KEY with the email): its attempts count on that
  device alone, :data:`PER_DEVICE` in a window; nobody else's failures lock it out;
* any other browser counts on the (account, address) pair (:data:`PER_PAIR`: one address
  guessing one account), on its address (:data:`PER_ADDRESS`: one address guessing many
  accounts) and on the account for all such browsers together (:data:`PER_ACCOUNT`: many
  addresses guessing one account). Reaching that last one locks out only browsers
  without the device cookie, for the rest of the window (``users login-link`` still
  signs anyone in).

Emails count whether or not an account has them (the answer must not tell). Counter
names are HMACs under SECRET_KEY: Redis holds neither addresses nor emails.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import request
from werkzeug.wrappers import Response

from webapp.auth.access import settings
from webapp.auth.headers import client
from webapp.auth.tokens import Kind, keyed_hash
from webapp.errors import HTTPError
from webapp.resources import resources

WINDOW_S = 15 * 60
PER_PAIR = 10
PER_ADDRESS = 50
PER_ACCOUNT = 50
PER_DEVICE = 10
DEVICE_COOKIE = "analytics_device"
DEVICE_TTL = timedelta(days=365)


@dataclass(frozen=True)
class Attempt:
    """A counted attempt: the counters to give back if it succeeds or never runs."""

    counters: list[str]


def _name(scope: str, ident: str) -> str:
    keyed = keyed_hash(settings().require_secret_key(), Kind.THROTTLE, f"{scope}\0{ident}")
    return resources().queue.keys.login_attempts(scope, keyed)


def _device_signature(email: str, nonce: str) -> str:
    return keyed_hash(settings().require_secret_key(), Kind.DEVICE, f"{email}\0{nonce}")


def _known_device(email: str) -> str | None:
    """This browser's device nonce when its cookie was issued for ``email``, else None."""
    nonce, _, signature = request.cookies.get(DEVICE_COOKIE, "").partition(".")
    if not nonce or not signature:
        return None
    if not hmac.compare_digest(signature, _device_signature(email, nonce)):
        return None
    return nonce


def _counters(email: str) -> list[tuple[str, int]]:
    device = _known_device(email)
    if device is not None:
        return [(_name("device", device), PER_DEVICE)]
    address = client()
    return [
        (_name("pair", f"{email}\0{address}"), PER_PAIR),
        (_name("address", address), PER_ADDRESS),
        (_name("account", email), PER_ACCOUNT),
    ]


async def attempt(email: str) -> Attempt:
    """Count an attempt on ``email`` from this browser, or raise 429 with Retry-After."""
    counters = _counters(email)
    wait = await resources().queue.count_attempt(counters, WINDOW_S)
    if wait:
        raise HTTPError.retry_later(429, "too many sign-in attempts, retry later", wait)
    return Attempt([name for name, _ in counters])


async def give_back(tried: Attempt) -> None:
    await resources().queue.give_back(tried.counters)


def remember_device(response: Response, email: str) -> Response:
    """After a successful sign-in: this browser's device cookie for ``email``."""
    nonce = secrets.token_urlsafe(16)
    response.set_cookie(
        DEVICE_COOKIE,
        f"{nonce}.{_device_signature(email, nonce)}",
        max_age=int(DEVICE_TTL.total_seconds()),
        path="/",
        httponly=True,
        secure=request.is_secure,
        samesite="Strict",
    )
    return response
