"""Is a User-Agent a crawler, a monitor or a headless browser? (crawlerdetect + markers)

crawlerdetect costs about 1 ms per uncached call (one large alternation regex), so
answers are cached per distinct, capped User-Agent in a bounded LRU, and ``load_rules``
compiles the regexes at start-up.

Apply this to tracker events only (those sent with a page ``url``): crawlerdetect also
flags ``curl``, ``python-requests``, ``python-httpx``, ``Go-http-client``, ``Wget`` and
``node-fetch``, which are exactly the clients a server-side sender of API events uses.
An empty User-Agent is not a bot here (crawlerdetect says the same); the caller decides
whether to accept tracker events without one.
"""

from __future__ import annotations

import functools
import re

from crawlerdetect import CrawlerDetect

from webapp.enrich.agent import UA_CACHE_SIZE, UA_MAX_CHARS

# Automation that crawlerdetect 0.4 misses or may drop from its list; browsers driven by
# these are test or scraping runs, not visitors.
_HEADLESS = re.compile(
    r"Headless|PhantomJS|SlimerJS|Puppeteer|Playwright|Selenium|WebDriver|Nightmare",
    re.IGNORECASE,
)


@functools.cache
def _detector() -> CrawlerDetect:
    """One detector. Its ``matches`` attribute is shared state we never read."""
    return CrawlerDetect()


def load_rules() -> None:
    """Compile crawlerdetect's regexes now rather than in the first request."""
    _detector().is_crawler("Mozilla/5.0 warm-up")


@functools.lru_cache(maxsize=UA_CACHE_SIZE)
def _is_bot_capped(ua: str) -> bool:
    """The verdict for one already-capped User-Agent."""
    if _HEADLESS.search(ua):
        return True
    return bool(_detector().is_crawler(ua))


def is_bot(ua: str) -> bool:
    """Whether the User-Agent is automated; never raises. See the module doc for scope."""
    return _is_bot_capped(ua[:UA_MAX_CHARS])


def bot_cache_size() -> int:
    """How many distinct User-Agents are cached now (at most ``UA_CACHE_SIZE``)."""
    return _is_bot_capped.cache_info().currsize
