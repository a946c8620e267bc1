"""parse_user_agent and device_class with the real ua-parser rules."""

from __future__ import annotations

import pytest

from webapp.enrich import Device, device_class, load_rules, parse_user_agent
from webapp.enrich.agent import UA_CACHE_SIZE, UNKNOWN_DEVICE, user_agent_cache_size

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD_SAFARI = IPHONE_SAFARI.replace("iPhone; CPU iPhone OS", "iPad; CPU OS")
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
ANDROID_PHONE_CHROME = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET_CHROME = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
ANDROID_FIREFOX = "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module", autouse=True)
def _rules_loaded() -> None:
    load_rules()


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (IPHONE_SAFARI, Device("Mobile Safari", "17", "iOS", "17", "phone")),
        (IPAD_SAFARI, Device("Mobile Safari", "17", "iOS", "17", "tablet")),
        (WINDOWS_CHROME, Device("Chrome", "120", "Windows", "10", "desktop")),
        (MAC_SAFARI, Device("Safari", "17", "Mac OS X", "10", "desktop")),
        (LINUX_FIREFOX, Device("Firefox", "121", "Linux", None, "desktop")),
        (ANDROID_PHONE_CHROME, Device("Chrome Mobile", "120", "Android", "10", "phone")),
        (ANDROID_TABLET_CHROME, Device("Chrome", "120", "Android", "13", "tablet")),
        (ANDROID_FIREFOX, Device("Firefox Mobile", "121", "Android", "14", "phone")),
        (GOOGLEBOT, Device("Googlebot", "2", None, None, "unknown")),
        ("curl/8.4.0", Device("curl", "8", None, None, "unknown")),
        # Unknown is None everywhere, never "Other" or "".
        ("", UNKNOWN_DEVICE),
        ("   ", UNKNOWN_DEVICE),
        ("totally unknown agent", UNKNOWN_DEVICE),
    ],
)
def test_parse(ua: str, expected: Device) -> None:
    assert parse_user_agent(ua) == expected


@pytest.mark.parametrize(
    "ua",
    [
        "\x00" * 100,
        "Mozilla/5.0 \x00 (iPhone)",
        "é漢字🙂" * 300,
        "\ud800",
        "(" * 5000,
        "Mozilla/5.0 " * 10_000,
        WINDOWS_CHROME * 100,
    ],
)
def test_hostile_user_agents_never_raise(ua: str) -> None:
    device = parse_user_agent(ua)
    assert device.device_type in ("phone", "tablet", "desktop", "unknown")


def test_only_the_first_512_characters_count() -> None:
    assert parse_user_agent(WINDOWS_CHROME + "x" * 10_000) == parse_user_agent(
        WINDOWS_CHROME + "x" * 600
    )


def test_cache_stays_bounded() -> None:
    """20,000 distinct (random-looking) User-Agents do not grow the cache past its bound."""
    for number in range(20_000):
        parse_user_agent(f"Mozilla/5.0 (Windows NT 10.0) Chrome/{number}.0 Safari/537.36")
    assert user_agent_cache_size() == UA_CACHE_SIZE


@pytest.mark.parametrize(
    ("width", "device_type", "expected"),
    [
        (320, "desktop", "Mobile"),
        (575, "unknown", "Mobile"),
        (576, "phone", "Tablet"),
        (991, "phone", "Tablet"),
        (992, "phone", "Laptop"),
        (1439, "unknown", "Laptop"),
        (1440, "phone", "Desktop"),
        (3840, "unknown", "Desktop"),
        # No (or a nonsensical) width: the UA's device type, as Plausible does now.
        (None, "phone", "Mobile"),
        (None, "tablet", "Tablet"),
        (None, "desktop", "Desktop"),
        (None, "unknown", None),
        (0, "phone", "Mobile"),
        (-5, "desktop", "Desktop"),
        (0, "unknown", None),
    ],
)
def test_device_class(width: int | None, device_type: str, expected: str | None) -> None:
    device = Device(device_type=device_type)  # type: ignore[arg-type]
    assert device_class(width, device) == expected


def test_device_class_from_parsed_agents() -> None:
    assert device_class(None, parse_user_agent(IPHONE_SAFARI)) == "Mobile"
    assert device_class(None, parse_user_agent(IPAD_SAFARI)) == "Tablet"
    assert device_class(None, parse_user_agent(MAC_SAFARI)) == "Desktop"
    assert device_class(None, parse_user_agent(GOOGLEBOT)) is None
