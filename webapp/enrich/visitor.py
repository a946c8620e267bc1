"""The cookieless visitor id: a keyed hash of site, address and User-Agent.

The salt is the key, so without it the id cannot be recomputed from a guessed address;
the caller rotates the salt (daily, as Plausible does) and forgets old ones, after which
ids cannot be linked across days. Each field is length-prefixed so that no two different
inputs encode to the same bytes (``("ab", "c")`` and ``("a", "bc")`` differ).
"""

from __future__ import annotations

import hashlib

# Domain separation: the same salt used for another purpose gives unrelated digests.
_PERSON = b"analytics-visit"
_MIN_SALT_BYTES = 16


def _field(value: str) -> bytes:
    """One length-prefixed field. ``surrogatepass`` so that no str can make it raise."""
    data = value.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(8, "big") + data


def visitor_hash(salt: bytes, site_id: str, address: str, user_agent: str) -> str:
    """32 lowercase hex characters identifying a visitor on a site for the salt's lifetime.

    Raises ValueError for a salt shorter than 16 or longer than 64 bytes: a short key
    would make the id guessable, and that is a configuration bug, not bad input.
    """
    if not _MIN_SALT_BYTES <= len(salt) <= hashlib.blake2b.MAX_KEY_SIZE:
        raise ValueError(
            f"visitor salt must be {_MIN_SALT_BYTES}..{hashlib.blake2b.MAX_KEY_SIZE} bytes"
        )
    digest = hashlib.blake2b(key=salt, digest_size=16, person=_PERSON)
    for value in (site_id, address, user_agent):
        digest.update(_field(value))
    return digest.hexdigest()
