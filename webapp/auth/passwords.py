"""Passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile), never logged.

``verify`` takes the same time whether the account exists or not: for an unknown
email it checks the password against a fixed dummy hash, so the answer's timing
does not tell which emails have accounts.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 1024

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


def check_strength(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_strength(password))


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None or '' for no usable password)."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return bool(stored)
