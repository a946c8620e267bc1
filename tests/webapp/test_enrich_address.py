"""client_address keeps uvicorn's FORWARDED_ALLOW_IPS meaning; addresses are normalized."""

from __future__ import annotations

import time

import pytest

from webapp.enrich import ForwardedAllow, client_address, normalize_address

LOCAL = ForwardedAllow.parse()  # the default, "127.0.0.1"
ANY = ForwardedAllow.parse("*")
MIXED = ForwardedAllow.parse("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8, unix:/run/app.sock")


@pytest.mark.parametrize(
    ("peer", "header", "allow", "expected"),
    [
        # No header: the peer, whoever it is.
        ("203.0.113.9", None, LOCAL, "203.0.113.9"),
        ("127.0.0.1", None, LOCAL, "127.0.0.1"),
        # Untrusted peer: the header is a client's claim and ignored.
        ("203.0.113.9", "198.51.100.1", LOCAL, "203.0.113.9"),
        ("10.1.2.3", "198.51.100.1", LOCAL, "10.1.2.3"),
        # Trusted peer, one hop.
        ("127.0.0.1", "198.51.100.1", LOCAL, "198.51.100.1"),
        ("10.1.2.3", "198.51.100.1", MIXED, "198.51.100.1"),
        # Several hops: walk from the right past trusted proxies; a forged left part is ignored.
        ("127.0.0.1", "1.1.1.1, 198.51.100.1, 10.0.0.5", MIXED, "198.51.100.1"),
        ("127.0.0.1", "1.1.1.1, 198.51.100.1, 127.0.0.1", LOCAL, "198.51.100.1"),
        ("127.0.0.1", "1.1.1.1, 198.51.100.1", LOCAL, "198.51.100.1"),
        # Every entry trusted: the leftmost one (uvicorn issue 1068).
        ("127.0.0.1", "10.0.0.7, 10.0.0.5", MIXED, "10.0.0.7"),
        # "*": any peer, and the leftmost entry.
        ("203.0.113.9", "1.1.1.1, 198.51.100.1", ANY, "1.1.1.1"),
        ("203.0.113.9", None, ANY, "203.0.113.9"),
        # Empty header or empty chosen entry: keep the peer, as uvicorn does.
        ("127.0.0.1", "", LOCAL, "127.0.0.1"),
        ("127.0.0.1", " , ", LOCAL, "127.0.0.1"),
        ("127.0.0.1", "1.1.1.1, , 127.0.0.1", LOCAL, "127.0.0.1"),
        # Garbage chosen from a trusted proxy's header: no address, not the proxy's.
        ("127.0.0.1", "not-an-ip", LOCAL, None),
        ("127.0.0.1", "1.1.1.1, unknown", LOCAL, None),
        ("127.0.0.1", "\x00\x00", LOCAL, None),
        ("127.0.0.1", "999.1.1.1", LOCAL, None),
        # Ports, brackets, zones and IPv4-mapped IPv6 are normalized.
        ("127.0.0.1", "198.51.100.1:4711", LOCAL, "198.51.100.1"),
        ("127.0.0.1", "[2001:db8::1]:443", LOCAL, "2001:db8::1"),
        ("127.0.0.1", "2001:DB8:0:0::1", LOCAL, "2001:db8::1"),
        ("127.0.0.1", "::ffff:198.51.100.1", LOCAL, "198.51.100.1"),
        ("::ffff:127.0.0.1", "198.51.100.1", LOCAL, "198.51.100.1"),
        ("::1", "2001:db8::2", MIXED, "2001:db8::2"),
        ("fd00::5", "2001:db8::2, fd00::9", MIXED, "2001:db8::2"),
        # A non-address peer (unix socket) is trusted only when listed literally.
        ("unix:/run/app.sock", "198.51.100.1", MIXED, "198.51.100.1"),
        ("unix:/run/other.sock", "198.51.100.1", MIXED, None),
        # No peer at all.
        (None, "198.51.100.1", LOCAL, None),
        (None, "198.51.100.1", ANY, "198.51.100.1"),
        ("", None, LOCAL, None),
    ],
)
def test_forwarded_semantics(
    peer: str | None, header: str | None, allow: ForwardedAllow, expected: str | None
) -> None:
    assert client_address(peer, header, allow) == expected


@pytest.mark.parametrize(
    ("value", "trusted", "untrusted"),
    [
        ("127.0.0.1", ["127.0.0.1", "::ffff:127.0.0.1"], ["127.0.0.2", "::1", "", None]),
        ("127.0.0.1, 10.0.0.0/8", ["10.255.0.1", "127.0.0.1"], ["11.0.0.1", "192.168.0.1"]),
        ("10.0.0.1/8", ["10.9.9.9"], ["11.0.0.1"]),  # host bits set: its network
        ("2001:db8::/32", ["2001:db8:ffff::1", "[2001:db8::1]:80"], ["2001:db9::1", "1.2.3.4"]),
        ("*", ["1.2.3.4", "anything", None], []),
        ("  ,, 192.0.2.1 ,", ["192.0.2.1"], ["192.0.2.2"]),
        ("not-an-ip, 300.1.1.1/8", ["not-an-ip"], ["1.2.3.4", "300.1.1.1"]),
        ("", [], ["127.0.0.1"]),
    ],
)
def test_allow_list_parsing(
    value: str, trusted: list[str | None], untrusted: list[str | None]
) -> None:
    allow = ForwardedAllow.parse(value)
    assert [allow.trusts(host) for host in trusted] == [True] * len(trusted)
    assert [allow.trusts(host) for host in untrusted] == [False] * len(untrusted)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("[::1]", "::1"),
        ("[::1]:8080", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::FFFF:8.8.8.8", "8.8.8.8"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("[::1", None),
        ("1.2.3", None),
        ("01.2.3.4", None),
        ("1.2.3.4.5", None),
        ("::g", None),
        ("é.é.é.é", None),
        ("1" * 10_000, None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_address(raw: str | None, expected: str | None) -> None:
    assert normalize_address(raw) == expected


def test_huge_header_is_linear_and_safe() -> None:
    """A 200 KB header of trusted hops (worst case for the right-to-left walk) stays fast."""
    header = ", ".join(["10.0.0.1"] * 20_000)
    started = time.perf_counter()
    assert client_address("127.0.0.1", header, MIXED) == "10.0.0.1"
    assert time.perf_counter() - started < 2.0
