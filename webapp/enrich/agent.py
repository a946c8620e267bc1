"""Browser, OS and device from the User-Agent, with ua-parser 1.x and its builtin rules.

Loading the rules costs 0.2-0.4 s (measured here with the ``ua-parser-rs`` accelerator),
so ``load_rules`` belongs in start-up, not in the first request. Results are cached per
distinct User-Agent in a bounded LRU: a client sending random strings evicts entries
instead of growing memory. Only the first ``UA_MAX_CHARS`` characters are considered,
which bounds both the regex work and the memory a cache entry can hold.

Unknown means None: an empty or unrecognized User-Agent gives ``browser``, ``os`` and
their versions None and ``device_type`` ``"unknown"`` (ua-parser's ``"Other"`` family is
mapped to None too), so a report shows one "Unknown" bucket, not "Other" next to "".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import ua_parser

UA_MAX_CHARS = 512
UA_CACHE_SIZE = 10_000

DeviceType = Literal["phone", "tablet", "desktop", "unknown"]

# ua-parser has no device type; these are read from its device and OS families.
_PHONE_FAMILIES = frozenset({"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"})
_TABLET_FAMILIES = frozenset({"iPad", "Generic Tablet", "Kindle", "Kindle Fire"})
_DESKTOP_OSES = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "Debian", "FreeBSD",
     "OpenBSD", "NetBSD", "Red Hat", "SUSE", "Mint", "Arch Linux", "Gentoo", "Solaris"}
)  # fmt: skip
_PHONE_OSES = frozenset({"iOS", "Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS"})


@dataclass(frozen=True)
class Device:
    """What a report may show about the visitor's software and hardware.

    Versions are majors only: finer ones add little to a report and much to how well a
    User-Agent identifies one person.
    """

    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device_type: DeviceType = "unknown"


UNKNOWN_DEVICE = Device()


@functools.cache
def _parser() -> ua_parser.Parser:
    """The one parser, built on first use (or by ``load_rules`` at start-up).

    Its own cache is left out: ours, keyed on the capped string, is in front of it.
    """
    if ua_parser.RegexResolver is not None:
        return ua_parser.Parser(ua_parser.RegexResolver(ua_parser.load_lazy_builtins()))
    return ua_parser.Parser(ua_parser.BestAvailableResolver(ua_parser.load_builtins()))


def load_rules() -> None:
    """Load and compile the parsing rules now (0.2-0.4 s here), so no request pays for it."""
    _parser().parse("Mozilla/5.0")


def _name_and_major(
    part: ua_parser.UserAgent | ua_parser.OS | None,
) -> tuple[str | None, str | None]:
    """(family, major) of a parsed part; ua-parser's "Other" (nothing matched) is None."""
    if part is None or not part.family or part.family == "Other":
        return None, None
    return part.family, part.major or None


def _device_type(ua: str, result: ua_parser.Result) -> DeviceType:
    """Phone, tablet or desktop from the device family, the OS and Android's "Mobile".

    Android phones put "Mobile" in the User-Agent and tablets leave it out (Google's
    documented convention), so an Android device without it is a tablet.
    """
    family = result.device.family if result.device else None
    brand = result.device.brand if result.device else None
    os_family = result.os.family if result.os else None
    if family == "Spider":
        return "unknown"
    if family in _TABLET_FAMILIES or (brand or "").endswith("_Tablet"):
        return "tablet"
    if family in _PHONE_FAMILIES or os_family in _PHONE_OSES:
        return "phone"
    if os_family == "Android":
        return "phone" if "Mobile" in ua else "tablet"
    if os_family in _DESKTOP_OSES:
        return "desktop"
    return "unknown"


@functools.lru_cache(maxsize=UA_CACHE_SIZE)
def _parse_capped(ua: str) -> Device:
    """Parse one already-capped User-Agent; the LRU makes repeats a dict lookup."""
    if not ua.strip():
        return UNKNOWN_DEVICE
    # The Rust engine takes UTF-8: a lone surrogate (possible from a JSON body) would raise.
    result = _parser().parse(ua.encode("utf-8", "replace").decode("utf-8"))
    browser, browser_version = _name_and_major(result.user_agent)
    os_name, os_version = _name_and_major(result.os)
    return Device(browser, browser_version, os_name, os_version, _device_type(ua, result))


def parse_user_agent(ua: str) -> Device:
    """The ``Device`` for a User-Agent header value; never raises, never returns the UA."""
    return _parse_capped(ua[:UA_MAX_CHARS])


def user_agent_cache_size() -> int:
    """How many distinct User-Agents are cached now (at most ``UA_CACHE_SIZE``)."""
    return _parse_capped.cache_info().currsize


# Screen-width classes, as Plausible reports them (its docs: Mobile up to 576 px, Tablet
# 576-992, Laptop 992-1440, Desktop above).
_WIDTH_CLASSES = ((576, "Mobile"), (992, "Tablet"), (1440, "Laptop"))
_TYPE_CLASSES: dict[DeviceType, str] = {"phone": "Mobile", "tablet": "Tablet", "desktop": "Desktop"}


def device_class(screen_width: int | None, device: Device) -> str | None:
    """Mobile, Tablet, Laptop or Desktop; None when neither width nor UA says.

    The width (``window.innerWidth`` from the tracker) wins when present and positive.
    Without it the UA's device type decides, as Plausible does today (it derives the
    size from the UA alone and leaves an unknown device type empty, never "Desktop").
    """
    if screen_width is not None and screen_width > 0:
        for limit, name in _WIDTH_CLASSES:
            if screen_width < limit:
                return name
        return "Desktop"
    return _TYPE_CLASSES.get(device.device_type)
