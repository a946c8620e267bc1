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
_DUMMY = _hasher.hash("not a password: the timing twin of an unknown account")


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
