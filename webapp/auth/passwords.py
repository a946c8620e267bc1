"""Passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile), never logged.

``verify`` takes the same time whether the account exists or not: for an unknown
email it checks the password against a fixed dummy hash, so the answer's timing
does not tell which emails have accounts.

One check fills a core for about a quarter of a second (64 MiB, three passes), so the
web edge never runs one on its event loop: :func:`check` and :func:`new_hash` hand it to
this process's one argon2 thread, which runs at a lower CPU priority than the loop (a
sign-in waits for CPU, never an event), and admit at most :data:`MAX_WAITING` checks
behind the running one: past that a sign-in is answered at once with :class:`Busy`
(``503`` with ``Retry-After``) rather than queueing CPU work that would answer too late.
The command line (``analytics users add``) calls the blocking functions directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 1024
# Checks admitted behind the running one; each takes about CHECK_S.
MAX_WAITING = 4
CHECK_S = 0.25
# The argon2 thread's nice value (Linux: per thread): the event loop's work goes first.
NICE = 10

T = TypeVar("T")

_hasher = PasswordHasher()
# The timing twin of an unknown account, made with the hasher's own parameters, so checking
# a password against it costs what checking a real account's does. Written out rather than
# hashed at import, which cost every process that imports webapp (each `analytics` command,
# worker and Hypercorn worker) 0.1-0.25 s of its start; hashed anew only when this
# argon2-cffi's default parameters differ from the ones it was made with.
_DUMMY_PASSWORD = "not a password: the timing twin of an unknown account"
_written_dummy = (
    "$argon2id$v=19$m=65536,t=3,p=4$fz7ycw5vmqouZeHFgGguOA"
    "$KnGVpOkggnFGCsUM2mZrZJJEBzyKXRd66XNPU2AigrI"
)
_DUMMY = (
    _hasher.hash(_DUMMY_PASSWORD) if _hasher.check_needs_rehash(_written_dummy) else _written_dummy
)


class WeakPassword(ValueError):
    """A password refused as too short or too long; the message is for the user."""


class Busy(Exception):
    """Too many password checks are waiting: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many sign-ins at once, retry in a few seconds")
        self.retry_after = retry_after


def check_strength(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """Blocking: for the command line; the web calls :func:`new_hash`."""
    return _hasher.hash(check_strength(password))


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None or '' for no usable password).

    Blocking: for the command line; the web calls :func:`check`."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return bool(stored)


def _lower_priority() -> None:
    """In the argon2 thread: yield the CPU to the event loop's thread when both want it."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class _Argon2Thread:
    """This process's one argon2 thread and the count of checks admitted to it."""

    def __init__(self) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.admitted = 0  # running + waiting; touched from event loops only

    def executor(self) -> ThreadPoolExecutor:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, "argon2", initializer=_lower_priority)
        return self.pool

    async def run(self, work: Callable[..., T], *args: str | None) -> T:
        if self.admitted > MAX_WAITING:
            raise Busy(math.ceil(self.admitted * CHECK_S) or 1)
        self.admitted += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor(), work, *args)
        finally:
            self.admitted -= 1


_ARGON2 = _Argon2Thread()


async def check(stored: str | None, password: str) -> bool:
    """:func:`verify` off the event loop; raises :class:`Busy` when too many wait."""
    return await _ARGON2.run(verify, stored, password)


async def new_hash(password: str) -> str:
    """:func:`hash_password` off the event loop (``WeakPassword`` raised before queueing)."""
    check_strength(password)
    return await _ARGON2.run(hash_password, password)
