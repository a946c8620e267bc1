"""Credentials as random secrets, stored only as HMAC-SHA256 under SECRET_KEY.

Every kind of secret (API key, session, share link, one-time sign-in link) is a
``secrets.token_urlsafe(32)`` (256 bits) behind a short kind prefix, and is
hashed with its kind as domain separator, so a digest of one kind can never be
replayed as another. A database dump holds digests only: without SECRET_KEY
they cannot even be brute-forced offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import Enum


class Kind(Enum):
    API_KEY = "ak"
    SESSION = "ss"
    SHARE = "sh"
    LOGIN = "ln"
    # Not secrets handed out: a device cookie's signature, the names of throttle counters.
    DEVICE = "dv"
    THROTTLE = "th"


# Characters of a key kept in clear for display ("ak_Xy12Ab34").
PREFIX_LEN = 11


def new_secret(kind: Kind) -> str:
    return f"{kind.value}_{secrets.token_urlsafe(32)}"


def display_prefix(secret: str) -> str:
    return secret[:PREFIX_LEN]


def keyed_hash(secret_key: str, kind: Kind, secret: str) -> str:
    """The stored form of ``secret``: 64 hex characters."""
    message = f"{kind.value}\0{secret}".encode("utf-8", "surrogatepass")
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()
