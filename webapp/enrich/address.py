"""The visitor's address, from the socket peer and ``X-Forwarded-For``.

The meaning is uvicorn's ``--forwarded-allow-ips`` / gunicorn's ``FORWARDED_ALLOW_IPS``
(uvicorn's ``ProxyHeadersMiddleware``, read at its September 2025 revision): the header is
only believed when the socket peer is a trusted proxy; it is then walked from the right
(each proxy appends the address it saw) and the first entry that is not itself a trusted
proxy is the client. When every entry is trusted, the leftmost one is the client; with
``*`` the leftmost entry is taken at once. An empty header keeps the peer.

Where this module is stricter or kinder than uvicorn, and why:

* Every address is normalized before it is compared or returned: brackets, ports and
  IPv6 zone ids are stripped, IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes IPv4. A
  dual-stack socket reports ``::ffff:127.0.0.1`` for a local proxy, and a hash or a
  country lookup must see one spelling per visitor.
* A header entry that is not an address gives ``None`` (uvicorn passes the garbage on).
  Falling back to the peer would count every visitor behind that proxy as one.
* A network with host bits set (``10.0.0.1/8``) means its network (uvicorn ignores it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Longest textual address we try to parse: "[" + 45-char IPv6 + "%zone" + "]:65535".
_MAX_ADDRESS_CHARS = 80


def parse_address(raw: str | None) -> IPAddress | None:
    """The address in ``raw``, normalized, or None when it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]``, ``[::1]:80``, ``fe80::1%eth0``;
    IPv4-mapped IPv6 comes back as IPv4. Never raises.
    """
    if not raw:
        return None
    text = raw.strip()
    if not text or len(text) > _MAX_ADDRESS_CHARS:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    text = text.partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalize_address(raw: str | None) -> str | None:
    """``parse_address`` as text: one spelling per address (compressed IPv6, plain IPv4)."""
    address = parse_address(raw)
    return None if address is None else str(address)


@dataclass(frozen=True)
class ForwardedAllow:
    """The proxies whose ``X-Forwarded-For`` is believed (``FORWARDED_ALLOW_IPS``).

    Build it once at start-up with ``parse``; membership is then a set lookup plus one
    check per configured network.
    """

    any_peer: bool = False
    addresses: frozenset[IPAddress] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    literals: frozenset[str] = frozenset()
    # The addresses in their normalized spelling: a peer spelled so is trusted without
    # parsing it (the common case, a proxy on 127.0.0.1, costs a set lookup).
    spellings: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: str = "127.0.0.1") -> ForwardedAllow:
        """Parse a comma-separated list of addresses, CIDR networks or ``*``.

        Entries that are neither addresses nor networks are kept as literals that match
        a peer spelled exactly so (uvicorn does the same, e.g. for a unix socket name).
        """
        items = [item.strip() for item in value.split(",")]
        if "*" in items:
            return cls(any_peer=True)
        addresses: set[IPAddress] = set()
        networks: list[IPNetwork] = []
        literals: set[str] = set()
        for item in filter(None, items):
            if "/" in item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    literals.add(item)
                continue
            address = parse_address(item)
            if address is None:
                literals.add(item)
            else:
                addresses.add(address)
        spellings = frozenset(str(address) for address in addresses)
        return cls(False, frozenset(addresses), tuple(networks), frozenset(literals), spellings)

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (a peer or a header entry) is one of the allowed proxies."""
        if self.any_peer:
            return True
        if not host:
            return False
        return self.judge(host)[0]

    def judge(self, host: str) -> tuple[bool, IPAddress | None]:
        """Whether ``host`` is an allowed proxy, and its parsed address when it was parsed
        (so that the caller need not parse it again)."""
        if host in self.spellings:
            return True, None
        address = parse_address(host)
        if address is None:
            return host.strip() in self.literals, None
        trusted = address in self.addresses or any(address in net for net in self.networks)
        return trusted, address


def client_address(
    peer: str | None, x_forwarded_for: str | None, allow: ForwardedAllow
) -> str | None:
    """The visitor's address, normalized, or None when there is no usable one.

    ``peer`` is the socket's remote address, ``x_forwarded_for`` the raw header (several
    headers joined with commas, as HTTP allows). Never raises on any input.
    """
    if x_forwarded_for is None or not allow.trusts(peer):
        return normalize_address(peer)
    hosts = [host.strip() for host in x_forwarded_for.split(",")]
    if allow.any_peer:
        chosen = hosts[0]
    else:
        # The nearest address that is not one of the proxies (each parsed once).
        for host in reversed(hosts):
            if not host:
                # uvicorn keeps the peer when the header yields nothing (its issue 1068).
                return normalize_address(peer)
            trusted, address = allow.judge(host)
            if not trusted:
                return None if address is None else str(address)
        chosen = hosts[0]
    if not chosen:
        # uvicorn keeps the peer when the header yields nothing (its issue 1068).
        return normalize_address(peer)
    return normalize_address(chosen)
