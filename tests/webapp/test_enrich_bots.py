"""is_bot with the real crawlerdetect lists plus the headless-browser markers."""

from __future__ import annotations

import pytest

from tests.webapp.test_enrich_agent import (
    ANDROID_FIREFOX,
    ANDROID_PHONE_CHROME,
    ANDROID_TABLET_CHROME,
    GOOGLEBOT,
    IPAD_SAFARI,
    IPHONE_SAFARI,
    LINUX_FIREFOX,
    MAC_SAFARI,
    WINDOWS_CHROME,
)
from webapp.enrich import is_bot, load_rules
from webapp.enrich.agent import UA_CACHE_SIZE
from webapp.enrich.bots import bot_cache_size

HEADLESS_CHROME = WINDOWS_CHROME.replace("Chrome/", "HeadlessChrome/")


@pytest.fixture(scope="module", autouse=True)
def _rules_loaded() -> None:
    load_rules()


@pytest.mark.parametrize(
    "ua",
    [
        GOOGLEBOT,
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        HEADLESS_CHROME,
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1",
        # Markers crawlerdetect 0.4 misses on its own.
        "Mozilla/5.0 (X11; Linux x86_64; rv:60.0) Gecko/20100101 SlimerJS/1.0.0",
        WINDOWS_CHROME + " Puppeteer",
        WINDOWS_CHROME + " Playwright/1.41",
        # Server-side clients: the reason is_bot applies to tracker events only.
        "curl/8.4.0",
        "python-requests/2.31.0",
        "python-httpx/0.27.0",
        "Go-http-client/1.1",
        "Wget/1.21.4",
    ],
)
def test_bots(ua: str) -> None:
    assert is_bot(ua)


@pytest.mark.parametrize(
    "ua",
    [
        WINDOWS_CHROME,
        MAC_SAFARI,
        LINUX_FIREFOX,
        IPHONE_SAFARI,
        IPAD_SAFARI,
        ANDROID_PHONE_CHROME,
        ANDROID_TABLET_CHROME,
        ANDROID_FIREFOX,
        WINDOWS_CHROME + " Edg/120.0.2210.61",
        # An Electron app is a real user's desktop app, not automation.
        WINDOWS_CHROME.replace("Safari/", "Electron/28.0.0 Safari/"),
        # Empty is not a bot here; the caller decides what to do with it.
        "",
        "   ",
    ],
)
def test_people(ua: str) -> None:
    assert not is_bot(ua)


@pytest.mark.parametrize(
    "ua",
    ["\x00" * 100, "\ud800", "é漢字🙂" * 300, "(" * 5000, "bot" * 100_000, GOOGLEBOT * 100],
)
def test_hostile_user_agents_never_raise(ua: str) -> None:
    assert is_bot(ua) in (True, False)


def test_cache_stays_bounded() -> None:
    for number in range(20_000):
        is_bot(f"Mozilla/5.0 (Windows NT 10.0) Chrome/{number}.0 Safari/537.36")
    assert bot_cache_size() == UA_CACHE_SIZE
