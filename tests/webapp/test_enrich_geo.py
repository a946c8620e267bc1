"""country_of with iptocc's bundled data; GeoDatabase with a tiny .mmdb written here.

No MaxMind database ships with ``maxminddb`` and nothing is downloaded at test time, so
``write_mmdb`` below writes one: the MaxMind DB format (version 2.0) is a binary search
tree over address bits, 16 zero bytes, a data section, and a metadata map after a marker.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest

from webapp.enrich import GeoDatabase, GeoDatabaseError, country_of

# --- a minimal MaxMind DB writer (IPv6 tree, 24-bit records) -------------------------------

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_TYPES = {"str": 2, "uint16": 5, "uint32": 6, "map": 7, "uint64": 9, "array": 11}


def _control(type_number: int, size: int) -> bytes:
    """Control byte(s): type in the top 3 bits (or extended), size in the low 5 (or more)."""
    size_bits, extra = (size, b"") if size < 29 else (29, bytes([size - 29]))
    if type_number <= 7:
        return bytes([(type_number << 5) | size_bits]) + extra
    return bytes([size_bits, type_number - 7]) + extra


def _encode(value: Any) -> bytes:
    """str, dict, list, or (uint type, int) in the data-section format (values < 284 bytes)."""
    if isinstance(value, str):
        data = value.encode()
        return _control(_TYPES["str"], len(data)) + data
    if isinstance(value, tuple):
        kind, number = str(value[0]), int(value[1])
        data = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return _control(_TYPES[kind], len(data)) + data
    if isinstance(value, dict):
        items = b"".join(_encode(k) + _encode(v) for k, v in value.items())
        return _control(_TYPES["map"], len(value)) + items
    return _control(_TYPES["array"], len(value)) + b"".join(_encode(v) for v in value)


def _build_tree(networks: list[tuple[str, int]]) -> list[list[Any]]:
    """A binary trie over 128 address bits; IPv4 networks sit under ::/96 as readers expect."""
    nodes: list[list[Any]] = [[None, None]]
    for text, offset in networks:
        network = ipaddress.ip_network(text)
        value = int(network.network_address)
        prefix = network.prefixlen + (96 if network.version == 4 else 0)
        current = 0
        for depth in range(prefix):
            bit = (value >> (127 - depth)) & 1
            if depth == prefix - 1:
                nodes[current][bit] = ("data", offset)
                break
            if nodes[current][bit] is None:
                nodes.append([None, None])
                nodes[current][bit] = len(nodes) - 1
            current = nodes[current][bit]
    return nodes


def write_mmdb(path: Path, records: dict[str, dict[str, Any]]) -> None:
    """Write a City-shaped database mapping each (non-overlapping) network to a record."""
    data, networks = b"", []
    for network, record in records.items():
        networks.append((network, len(data)))
        data += _encode(record)
    nodes = _build_tree(networks)
    count = len(nodes)

    def record_value(record: Any) -> int:
        if record is None:
            return count  # "no data"
        if isinstance(record, tuple):
            return count + 16 + int(record[1])
        return int(record)

    tree = b"".join(
        record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big")
        for left, right in nodes
    )
    metadata = {
        "node_count": ("uint32", count),
        "record_size": ("uint16", 24),
        "ip_version": ("uint16", 6),
        "database_type": "Test-City",
        "languages": ["en"],
        "binary_format_major_version": ("uint16", 2),
        "binary_format_minor_version": ("uint16", 0),
        "build_epoch": ("uint64", 1_700_000_000),
        "description": {"en": "enrichment test database"},
    }
    path.write_bytes(tree + bytes(16) + data + _METADATA_MARKER + _encode(metadata))


def _city(region: str, city: str) -> dict[str, Any]:
    return {
        "city": {"names": {"en": city, "de": f"{city} (de)"}},
        "subdivisions": [{"names": {"en": region}}],
        "country": {"iso_code": "GB"},
    }


@pytest.fixture(scope="module")
def geo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    write_mmdb(
        path,
        {
            "81.2.69.0/24": _city("England", "London"),
            "89.160.20.0/24": _city("Östergötland County", "Linköping"),
            "2a02:cf40::/32": {"country": {"iso_code": "NO"}},  # no city, no region
            "2001:4860::/32": {"city": {"names": {"en": "Mountain View"}}},
            "8.8.8.0/24": {"city": "not a map", "subdivisions": "not a list"},
        },
    )
    return path


# --- country_of ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("81.2.69.160", "GB"),
        ("8.8.8.8", "US"),
        ("80.67.169.12", "FR"),
        ("193.99.144.80", "DE"),
        ("133.242.0.1", "JP"),
        ("89.160.20.112", "SE"),
        ("2001:4860:4860::8888", "US"),
        ("::ffff:81.2.69.160", "GB"),
        # The registries mark some blocks "EU" (a region, not an ISO country): no country.
        ("139.191.27.82", None),
        ("[2001:4860:4860::8888]:443", "US"),
        # Not public: no lookup at all.
        ("10.1.2.3", None),
        ("192.168.1.1", None),
        ("172.16.0.1", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("fd00::1", None),
        ("fe80::1%eth0", None),
        ("100.64.0.1", None),
        ("169.254.1.1", None),
        ("192.0.2.1", None),
        ("0.0.0.0", None),
        ("255.255.255.255", None),
        # Not addresses.
        (None, None),
        ("", None),
        ("garbage", None),
        ("1.2.3.4\x00", None),
        ("999.1.1.1", None),
        ("é" * 10_000, None),
    ],
)
def test_country_of(address: str | None, expected: str | None) -> None:
    assert country_of(address) == expected


# --- GeoDatabase -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("81.2.69.160", ("England", "London")),
        ("::ffff:81.2.69.1", ("England", "London")),
        ("89.160.20.112", ("Östergötland County", "Linköping")),
        ("2a02:cf40::1", (None, None)),
        ("2001:4860:4860::8888", (None, "Mountain View")),
        ("8.8.8.8", (None, None)),  # a record of the wrong shape
        ("81.2.70.1", (None, None)),  # not in the database
        ("10.0.0.1", (None, None)),
        ("garbage", (None, None)),
        (None, (None, None)),
    ],
)
def test_region_city(geo_path: Path, address: str | None, expected: tuple[Any, Any]) -> None:
    with GeoDatabase(geo_path) as geo:
        assert geo.region_city(address) == expected


def test_missing_database_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="geo database not found") as caught:
        GeoDatabase(tmp_path / "nope.mmdb")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, _METADATA_MARKER + b"\xff" * 10])
def test_corrupt_database_is_one_clear_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoDatabaseError, match="geo database unreadable") as caught:
        GeoDatabase(path)
    assert "\n" not in str(caught.value)


def test_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="geo database unreadable"):
        GeoDatabase(tmp_path)


def test_country_lookup_is_fast() -> None:
    """DESIGN.md measured iptocc at ~1 µs; with our normalization it stays far below 50 µs."""
    started = time.perf_counter()
    for number in range(10_000):
        country_of(f"81.2.{number % 256}.{number // 256}")
    assert (time.perf_counter() - started) / 10_000 < 50e-6
