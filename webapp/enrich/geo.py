"""Country from the address (iptocc), and optionally region and city (a MaxMind file).

iptocc carries the Regional Internet Registries' delegation data inside its wheel: no
file to download, no network at run time, about 1 µs a lookup. It knows countries only;
a site that wants regions and cities points ``GeoDatabase`` at a GeoLite2/GeoIP2 City
``.mmdb`` file it obtained itself (the licence forbids shipping one).

Addresses that are not public (private, loopback, link-local, reserved, documentation)
and strings that are not addresses give None, before any lookup.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import iptocc
import maxminddb

from webapp.enrich.address import parse_address

# RIR data marks some blocks with regions, not countries; a report wants countries.
_NOT_COUNTRIES = frozenset({"EU", "AP", "ZZ", "XX"})


def _public(address: str | None) -> str | None:
    """The normalized address when it is a public one, else None."""
    parsed = parse_address(address)
    if parsed is None or not parsed.is_global:
        return None
    return str(parsed)


def _lookup(address: str) -> str | None:
    try:
        return iptocc.country_code(address)
    except ValueError:
        return None


def country_of(address: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code (upper case) of a public address, or None. Never raises.

    An address as the web edge passes it (normalized) is looked up as it is: the RIR
    data holds no private, reserved or documentation block, so only public addresses
    are found, in well under a microsecond. Other spellings are normalized first (the
    ``ipaddress`` checks cost tens of microseconds, too much for every event).
    """
    if not address:
        return None
    code = _lookup(address)
    if code is None:
        public = _public(address)
        if public is None or public == address:
            return None
        code = _lookup(public)
    if code is None or code in _NOT_COUNTRIES:
        return None
    return code


class GeoDatabaseError(Exception):
    """The configured geo database cannot be opened; the message is one line to log."""


def _english_name(record: Any) -> str | None:
    """``record["names"]["en"]`` when the record has that shape, else None."""
    if not isinstance(record, dict):
        return None
    names = record.get("names")
    name = names.get("en") if isinstance(names, dict) else None
    return name if isinstance(name, str) and name else None


class GeoDatabase:
    """A MaxMind City database (``.mmdb``) giving English region and city names.

    Opened once at start-up (memory-mapped by the C extension when available); lookups
    are thread-safe reads. Use as a context manager or call ``close``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self._reader = maxminddb.open_database(os.fspath(path))
        except FileNotFoundError:
            raise GeoDatabaseError(f"geo database not found: {os.fspath(path)}") from None
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise GeoDatabaseError(
                f"geo database unreadable: {os.fspath(path)}: {reason}"
            ) from None

    def region_city(self, address: str | None) -> tuple[str | None, str | None]:
        """(region, city) in English for a public address; (None, None) when unknown."""
        public = _public(address)
        if public is None:
            return None, None
        try:
            record = self._reader.get(public)
        except (ValueError, maxminddb.InvalidDatabaseError):
            # An IPv6 address in an IPv4-only database, or a damaged data section.
            return None, None
        if not isinstance(record, dict):
            return None, None
        regions = record.get("subdivisions")
        first_region = regions[0] if isinstance(regions, list) and regions else None
        return _english_name(first_region), _english_name(record.get("city"))

    def close(self) -> None:
        """Unmap the file."""
        self._reader.close()

    def __enter__(self) -> GeoDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
