"""visitor_hash: keyed, stable, unambiguous, 32 lowercase hex characters."""

from __future__ import annotations

import hashlib
import re

import pytest

from webapp.enrich import visitor_hash

SALT = bytes(range(32))
OTHER_SALT = bytes(range(1, 33))
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def test_shape_and_stability() -> None:
    first = visitor_hash(SALT, "site", "198.51.100.1", UA)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert visitor_hash(SALT, "site", "198.51.100.1", UA) == first


def test_is_keyed_blake2b_not_a_plain_digest() -> None:
    """Without the salt the id cannot be recomputed from the inputs alone."""
    digest = visitor_hash(SALT, "site", "198.51.100.1", UA)
    plain = hashlib.blake2b(f"site198.51.100.1{UA}".encode(), digest_size=16).hexdigest()
    assert digest != plain


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # Field boundaries matter: a plain concatenation would make these collide.
        (("ab", "c", "d"), ("a", "bc", "d")),
        (("a", "b", "cd"), ("a", "bc", "d")),
        (("", "1.2.3.4", UA), ("1.2.3.4", "", UA)),
        (("site", "1.2.3.4", ""), ("site", "1.2.3.4", "\x00")),
        # Each field counts.
        (("site", "1.2.3.4", UA), ("other", "1.2.3.4", UA)),
        (("site", "1.2.3.4", UA), ("site", "1.2.3.5", UA)),
        (("site", "1.2.3.4", UA), ("site", "1.2.3.4", UA + " ")),
    ],
)
def test_unambiguous_encoding(left: tuple[str, str, str], right: tuple[str, str, str]) -> None:
    assert visitor_hash(SALT, *left) != visitor_hash(SALT, *right)


def test_salt_rotation_unlinks_visitors() -> None:
    assert visitor_hash(SALT, "s", "1.2.3.4", UA) != visitor_hash(OTHER_SALT, "s", "1.2.3.4", UA)


@pytest.mark.parametrize("salt", [b"", b"short", b"x" * 15, b"x" * 65])
def test_bad_salt_is_a_configuration_error(salt: bytes) -> None:
    with pytest.raises(ValueError, match="visitor salt"):
        visitor_hash(salt, "s", "1.2.3.4", UA)


@pytest.mark.parametrize(
    "value", ["", "\x00" * 10, "é漢字🙂", "\ud800 lone surrogate", "x" * 1_000_000]
)
def test_hostile_fields_never_raise(value: str) -> None:
    assert len(visitor_hash(SALT, value, value, value)) == 32
