"""A line at the door of the forms that check a password (``POST /login``, ``POST /account``).

Under a sign-in flood the event loop's own work per attempt (the request, its CSRF and
form, the throttle's round trip, the answer page: a few milliseconds) adds up to more than
the loop has: 300 attackers answered as fast as they ask kept ``POST /event`` waiting
behind them (p99 from 8 ms to 300 ms in tests/webapp/auth/test_signin_load.py). The bridge
lets such requests into Flask at most :data:`INSIDE` at once and :data:`PER_SECOND` a
second; the others wait here, costing nothing, and an attacker waits for its answer before
it sends its next attempt, so a flood takes a small, fixed share of the loop. That pace is
five times what the process's argon2 thread can check (about four a second): more would
only be answered "busy". :data:`INSIDE` leaves room for the checks waiting on the argon2
thread (they hold their place while they wait) and for one more. Past :data:`WAITING` in
line, an attempt is answered ``503`` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from webapp.auth.passwords import MAX_WAITING
from webapp.errors import HTTPError

PATHS = frozenset({"/login", "/account"})
INSIDE = MAX_WAITING + 2
PER_SECOND = 20
WAITING = 1024
RETRY_AFTER_S = 2


class SignInGate:
    """The line itself: one per process, used from its event loop only."""

    def __init__(self) -> None:
        self._inside: asyncio.Semaphore | None = None
        self._waiting = 0
        self._next = 0.0  # the loop time before which no one else goes in

    @staticmethod
    def handles(scope: Mapping[str, Any]) -> bool:
        return scope.get("method") == "POST" and scope.get("path") in PATHS

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a place inside and for the pace (raises a 503 HTTPError when the line
        is full)."""
        if self._inside is None:
            self._inside = asyncio.Semaphore(INSIDE)
        if self._waiting >= WAITING:
            raise HTTPError.retry_later(
                503, "too many sign-ins at once, retry later", RETRY_AFTER_S
            )
        self._waiting += 1
        try:
            await self._inside.acquire()
        finally:
            self._waiting -= 1
        try:
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self._next)
            self._next = start + 1 / PER_SECOND
            await asyncio.sleep(start - loop.time())
            yield
        finally:
            self._inside.release()
