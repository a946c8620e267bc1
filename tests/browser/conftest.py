"""Fixtures for the browser tests: Debian's Chromium driven by Playwright against the real servers.

The servers come from the ``live_server`` fixture of ``tests/conftest.py`` (real ``analytics web``
and ``analytics worker`` against real Redis and MariaDB). Set ``ANALYTICS_BROWSER_BASE_URL`` to run
these tests against servers you already run instead.

Chromium is Debian's (``apt-get install -y chromium``); ``playwright install`` is never used. When
``/usr/bin/chromium`` is missing the tests are skipped, except when ``CI`` is set: there a missing
browser is a failure.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests import helpers

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Tracker events (they carry ``url``) from a headless browser are counted as bots and never stored,
# and Playwright's default User-Agent says HeadlessChrome: pages that run the tracker and expect
# their events to count present an ordinary desktop Chrome instead.
ORDINARY_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs in a real Chromium through Playwright")


def _missing_browser_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Outside CI, a machine without Chromium skips the browser tests with the reason; in CI they
    # run and the ``browser`` fixture fails them.
    reason = _missing_browser_reason()
    if reason is None or os.environ.get("CI"):
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


# ---- servers -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def analytics_url(request: pytest.FixtureRequest) -> str:
    """Base URL of the analytics web server (no trailing slash)."""
    url = os.environ.get("ANALYTICS_BROWSER_BASE_URL")
    if not url:
        url = request.getfixturevalue("live_server").base_url
    return str(url).rstrip("/")


class _SiteHandler(BaseHTTPRequestHandler):
    """Serves, for any path, a page of a 'customer site' that embeds the analytics tracker."""

    analytics_url = ""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        site = query.get("site", ["test-site"])[0]
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Customer site</title>"
            f"<script defer src='{escape(self.analytics_url)}/tracker.js' "
            f"data-site='{escape(site)}'></script></head>"
            "<body><h1>A customer's single-page app</h1></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def second_origin(analytics_url: str) -> Iterator[str]:
    """A plain http.server on another port: a different origin that embeds tracker.js."""
    handler = type("Handler", (_SiteHandler,), {"analytics_url": analytics_url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---- browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(analytics_url: str) -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop running in this thread while it is
    # open, which would break the asyncio tests that run after the browser tests. Depending on
    # analytics_url starts the servers first, so they are stopped only after the browser closes.
    reason = _missing_browser_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the browser is missing: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    # The worker stores events within about a second and the page refreshes every 5 s.
    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class PageProblems:
    """Console errors, uncaught exceptions and dialogs seen by a page."""

    def __init__(self) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.dialogs == [], self.dialogs


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, problems: PageProblems) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-US", user_agent=ORDINARY_UA
    )
    context.set_default_timeout(20_000)
    pg = context.new_page()
    watch(pg, problems)
    try:
        yield pg
    finally:
        context.close()


def watch(pg: Any, problems: PageProblems) -> None:
    """Record the page's console errors, uncaught exceptions and dialogs (dismissed) in problems."""

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.console_errors.append(message.text)

    pg.on("console", on_console)
    pg.on("pageerror", lambda e: problems.page_errors.append(str(e)))

    def on_dialog(dialog: Any) -> None:
        problems.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)


# ---- API helpers -------------------------------------------------------------------------------
def post_event(base_url: str, event: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(
        f"{base_url}/event",
        data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def get_json(base_url: str, path: str, **params: Any) -> Any:
    url = f"{base_url}{path}" + (f"?{urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def wait_for(fn: Callable[[], Any], timeout: float = 20.0, interval: float = 0.25) -> Any:
    """:func:`tests.helpers.wait_for`, a page or API not answering yet counting as "not yet"."""
    retry = (urllib.error.URLError, OSError, ValueError)
    return helpers.wait_for(fn, timeout, interval, retry_on=retry)
