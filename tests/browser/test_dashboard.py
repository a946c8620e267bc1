"""The dashboard and the tracker snippet in a real browser, against the real servers."""

from __future__ import annotations

import os
import random
import re
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from .conftest import ARTIFACTS, ORDINARY_UA, PageProblems, get_json, post_event, wait_for

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
DOCS_SCREENSHOT = ARTIFACTS.parent.parent.parent / "docs" / "dashboard.png"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def new_site(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def views(base: str, site: str, **params: Any) -> int:
    """Page views, as the dashboard counts them."""
    found = get_json(base, "/stats", site_id=site, event_type="pageview", **params)
    return int(found["total_views"])


PAGES_ROWS = "#panel-pages tbody tr"
NO_VALUE = "\N{EN DASH}"  # what a figure shows until it is known


def figure(page: Any, name: str) -> Any:
    return page.locator(f"#fig-{name} [data-role=value]")


def wait_views(base: str, site: str, n: int, **params: Any) -> None:
    wait_for(lambda: views(base, site, **params) >= n)


def test_dashboard_loads_without_console_errors(
    page: Any, problems: PageProblems, analytics_url: str
) -> None:
    site = new_site("loads")
    for path in ("/", "/pricing"):
        event = {"site_id": site, "event_type": "pageview", "path": path}
        assert post_event(analytics_url, event) == 202
    wait_views(analytics_url, site, 2)

    page.goto(f"{analytics_url}/?site={site}&range=today")
    expect(figure(page, "pageviews")).to_have_text("2")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#chart .uplot")).to_have_count(1)
    expect(page.locator(PAGES_ROWS)).to_have_count(2)
    expect(page.locator("#live-worker")).to_have_text(re.compile("Running"))
    # Stay for one automatic refresh: it must not produce errors either.
    page.wait_for_timeout(5500)
    expect(page.locator("#error-banner")).to_be_hidden()
    problems.assert_clean()

    # The bare URL picks a site itself and records it in the URL.
    page.goto(f"{analytics_url}/")
    expect(page).to_have_url(re.compile(r"[?&]site="))
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    problems.assert_clean()


def test_form_event_updates_figures_without_reload(
    page: Any, problems: PageProblems, analytics_url: str
) -> None:
    site = new_site("form")
    page.goto(f"{analytics_url}/?site={site}&range=today")
    expect(figure(page, "pageviews")).to_have_text("0")
    page.evaluate("window.__notReloaded = true")

    # An error from the API is shown as the API worded it.
    page.fill("#ev-site", site)
    page.fill("#ev-type", "")
    page.click("#ev-submit")
    expect(page.locator("#form-status")).to_have_text(re.compile(r"Rejected \(400\): \S"))

    # Keyboard only: type into the labelled fields and press Enter.
    page.get_by_label("Event type").fill("pageview")
    page.get_by_role("textbox", name="Path (optional)").fill("/pricing")
    page.get_by_role("textbox", name="User (optional)").fill("user-1")
    page.get_by_role("textbox", name="User (optional)").press("Enter")
    expect(page.locator("#form-status")).to_have_text(re.compile(r"Accepted \(202"))

    expect(figure(page, "pageviews")).to_have_text("1", timeout=20_000)
    expect(figure(page, "visitors")).to_have_text("1")
    expect(page.locator(PAGES_ROWS)).to_have_text([re.compile(r"/pricing\s*1\s*1")])
    assert page.evaluate("window.__notReloaded") is True
    problems.console_errors = [e for e in problems.console_errors if "400" not in e]
    problems.assert_clean()


def test_site_and_range_follow_url(page: Any, problems: PageProblems, analytics_url: str) -> None:
    site_a, site_b = new_site("alpha"), new_site("beta")
    now = datetime.now(timezone.utc)
    three_days_ago = old = (now - timedelta(days=3)).replace(hour=12, minute=0, second=0)
    for i in range(3):
        post_event(analytics_url, {"site_id": site_a, "event_type": "pageview", "path": f"/a{i}"})
    post_event(analytics_url, {"site_id": site_b, "event_type": "pageview", "path": "/b"})
    for _ in range(2):
        post_event(
            analytics_url,
            {"site_id": site_b, "event_type": "pageview", "path": "/old", "timestamp": iso(old)},
        )
    wait_views(analytics_url, site_a, 3)
    wait_views(analytics_url, site_b, 1)
    wait_views(analytics_url, site_b, 2, date=three_days_ago.date().isoformat())

    page.goto(f"{analytics_url}/?site={site_a}&range=today")
    expect(figure(page, "pageviews")).to_have_text("3")

    page.select_option("#site-select", site_b)
    expect(page).to_have_url(re.compile(rf"site={site_b}"))
    expect(figure(page, "pageviews")).to_have_text("1")

    page.select_option("#range-select", "7d")
    expect(page).to_have_url(re.compile(r"range=7d"))
    expect(figure(page, "pageviews")).to_have_text("3")
    expect(page.locator("#chart-interval")).to_have_text("by day, UTC")

    page.select_option("#range-select", "day")
    page.fill("#custom-date", three_days_ago.date().isoformat())
    expect(page).to_have_url(re.compile(rf"range=day&date={three_days_ago.date().isoformat()}"))
    expect(figure(page, "pageviews")).to_have_text("2")

    # Back and forward walk through the selections; a bookmark reopens the same view.
    page.go_back()
    expect(page).to_have_url(re.compile(r"range=day(?!&date)|range=day&date=" + today()))
    page.go_back()
    expect(page).to_have_url(re.compile(r"range=7d"))
    expect(figure(page, "pageviews")).to_have_text("3")
    page.go_back()
    expect(page).to_have_url(re.compile(rf"site={site_b}&range=today"))
    expect(figure(page, "pageviews")).to_have_text("1")
    page.go_back()
    expect(page).to_have_url(re.compile(rf"site={site_a}"))
    expect(figure(page, "pageviews")).to_have_text("3")
    expect(page.locator("#site-select")).to_have_value(site_a)
    page.go_forward()
    expect(figure(page, "pageviews")).to_have_text("1")
    expect(page.locator("#site-select")).to_have_value(site_b)

    page.goto(f"{analytics_url}/?site={site_b}&range=day&date={three_days_ago.date().isoformat()}")
    expect(page.locator("#range-select")).to_have_value("day")
    expect(figure(page, "pageviews")).to_have_text("2")
    problems.assert_clean()


def test_hostile_path_is_shown_literally(
    page: Any, problems: PageProblems, analytics_url: str
) -> None:
    site = new_site("hostile")
    event = {"site_id": site, "event_type": "pageview", "path": HOSTILE, "user_id": HOSTILE}
    assert post_event(analytics_url, event) == 202
    wait_views(analytics_url, site, 1)

    page.goto(f"{analytics_url}/?site={site}&range=today")
    cell = page.locator("#panel-pages tbody td.label")
    expect(cell).to_have_text(HOSTILE)
    assert page.locator("img[src=x]").count() == 0
    page.wait_for_timeout(1000)
    assert problems.dialogs == []
    problems.assert_clean()


def test_empty_error_and_no_data_states(page: Any, analytics_url: str) -> None:
    """What the page says with no site yet, with a failing endpoint, and with the API down."""

    def api_path(name: str) -> Callable[[str], bool]:
        return lambda url: urlsplit(url).path == name

    # No site has sent anything yet: the snippet and a curl example, for this server.
    page.route(api_path("/sites"), lambda route: route.fulfill(json={"sites": []}))
    page.goto(f"{analytics_url}/")
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#snippet-code")).to_have_text(
        f'<script defer src="{analytics_url}/tracker.js" data-site="my-site"></script>'
    )
    expect(page.locator("#curl-code")).to_contain_text(f"curl -X POST {analytics_url}/event")
    expect(page.locator("#site-select")).to_contain_text("No sites yet")
    page.unroute_all()

    # A site with no data in the period, and endpoints failing: each section says what happened.
    site = new_site("nodata")
    missing = {"status": 404, "json": {"error": "no such endpoint"}}
    page.route(api_path("/stats/timeseries"), lambda route: route.fulfill(**missing))
    page.route(
        lambda url: urlsplit(url).path == "/stats/breakdown" and "property=source&" in url,
        lambda route: route.fulfill(**missing),
    )
    page.goto(f"{analytics_url}/?site={site}&range=7d")
    expect(figure(page, "pageviews")).to_have_text("0")
    expect(figure(page, "bounce-rate")).to_have_text("0%")
    expect(page.locator("#panel-pages [data-role=msg]")).to_contain_text(
        f"No page views for {site} in last 7 days"
    )
    expect(page.locator("#panel-devices [data-role=msg]")).to_contain_text(
        f"No data for {site} in last 7 days"
    )
    expect(page.locator("#chart-msg")).to_have_text(
        "Could not load the time series: the API answered 404: no such endpoint."
    )
    expect(page.locator("#panel-sources [data-role=msg]")).to_have_text(
        "Could not load this breakdown: the API answered 404: no such endpoint."
    )
    page.unroute_all()
    page.route(api_path("/stats/aggregate"), lambda route: route.fulfill(**missing))
    page.goto(f"{analytics_url}/?site={site}&range=7d")
    expect(page.locator("#figures-msg")).to_have_text(
        "Could not load the figures: the API answered 404: no such endpoint."
    )
    expect(figure(page, "visitors")).to_have_text(NO_VALUE)
    page.unroute_all()

    # The API goes down: a banner and an offline indicator; the selection stays; it recovers.
    def is_api(url: str) -> bool:
        path = urlsplit(url).path
        return path != "/" and not path.startswith("/static/")

    page.route(is_api, lambda route: route.abort())
    expect(page.locator("#error-banner")).to_contain_text("cannot reach the analytics API")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "error")
    expect(page).to_have_url(re.compile(rf"site={site}&range=7d"))
    page.unroute_all()
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    expect(page.locator("#error-banner")).to_be_hidden()
    expect(page.locator("#chart .uplot")).to_have_count(1)


def test_tracker_on_second_origin_counts_spa_pageviews(
    page: Any, problems: PageProblems, analytics_url: str, second_origin: str
) -> None:
    site = new_site("spa")
    with urllib.request.urlopen(f"{analytics_url}/tracker.js", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/javascript; charset=utf-8"
        assert "max-age=" in resp.headers["Cache-Control"]
        assert b"sendBeacon" in resp.read()
    assert urlsplit_origin(second_origin) != urlsplit_origin(analytics_url)
    page.goto(f"{second_origin}/start?site={site}")
    page.wait_for_function("window.analytics && typeof window.analytics.track === 'function'")
    page.evaluate("history.pushState({}, '', '/second')")
    page.evaluate("history.pushState({}, '', '/third')")
    page.evaluate("history.replaceState({}, '', '/third?tab=2')")  # same path: not a new pageview
    page.evaluate("window.analytics.track('signup', {path: '/third', user_id: 'user-7'})")

    wait_views(analytics_url, site, 3)
    page.wait_for_timeout(1500)  # anything extra would have arrived by now
    stats = get_json(analytics_url, "/stats", site_id=site, event_type="pageview")
    assert stats["total_views"] == 3
    assert sorted(p["path"] for p in stats["top_paths"]) == ["/second", "/start", "/third"]

    def counts() -> dict[str, int]:
        found = get_json(analytics_url, "/stats/event-types", site_id=site, date=today())
        return {t["event_type"]: t["count"] for t in found["event_types"]}

    assert wait_for(lambda: len(counts()) == 2 and counts()) == {"pageview": 3, "signup": 1}
    problems.assert_clean()


def urlsplit_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# Demo traffic for the screenshots: where visitors come from, what they browse with, their
# addresses (sent as X-Forwarded-For, which the servers believe from 127.0.0.1: countries) and the
# screen widths that go with their devices.
DEMO_SOURCES = [
    (40, "https://www.google.com/", {}),
    (20, "", {}),
    (10, "https://news.ycombinator.com/", {}),
    (8, "https://www.reddit.com/r/selfhosted/", {}),
    (7, "https://duckduckgo.com/", {}),
    (6, "", {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "launch"}),
    (5, "https://github.com/", {}),
    (4, "https://t.co/abc", {"utm_source": "twitter", "utm_medium": "social"}),
]
DEMO_AGENTS = [
    (35, 1440, ORDINARY_UA.replace("X11; Linux x86_64", "Windows NT 10.0; Win64; x64")),
    (
        20,
        1280,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    ),
    (
        25,
        390,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    ),
    (
        12,
        412,
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36",
    ),
    (8, 1920, "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
]
DEMO_ADDRESSES = [
    (30, "8.8.{}.{}"),  # US
    (20, "193.99.{}.{}"),  # DE
    (12, "81.2.{}.{}"),  # GB
    (10, "133.242.{}.{}"),  # JP
    (8, "200.160.{}.{}"),  # BR
    (6, "1.1.{}.{}"),  # AU
]


def test_screenshot_with_data(browser: Any, analytics_url: str) -> None:
    """Fill a demo site with two weeks of visits and save screenshots (wide and phone width)."""
    site = "demo-shop"
    rng = random.Random(4)
    paths = ["/", "/pricing", "/blog/launch", "/docs/getting-started", "/about", "/signup"]
    weights = [40, 22, 14, 10, 6, 8]

    def pick(choices: Sequence[tuple[Any, ...]]) -> Any:
        return rng.choices(choices, [c[0] for c in choices])[0]

    now = datetime.now(timezone.utc).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    pageviews = 0
    for day in range(13, -1, -1):
        visits = 8 + int(4 * (13 - day) / 13) + rng.randint(0, 4)
        elapsed = 86_399 - 3600 if day else max(1, int((now - midnight).total_seconds()) - 3600)
        starts = sorted(rng.randint(0, elapsed) for _ in range(visits))
        for start in starts:
            _, referrer, utm = pick(DEMO_SOURCES)
            _, width, agent = pick(DEMO_AGENTS)
            _, address = pick(DEMO_ADDRESSES)
            headers = {
                "User-Agent": agent,
                "X-Forwarded-For": address.format(rng.randint(0, 255), rng.randint(1, 254)),
            }
            ts = midnight - timedelta(days=day) + timedelta(seconds=start)
            for n in range(rng.choices([1, 2, 3, 4], [45, 30, 15, 10])[0]):
                path = rng.choices(paths, weights)[0] if n else "/"
                query = f"?{urlencode(utm)}" if utm and not n else ""
                event = {
                    "site_id": site,
                    "event_type": "pageview",
                    "url": f"https://shop.example{path}{query}",
                    "screen_width": width,
                    "timestamp": iso(ts),
                }
                if referrer and not n:
                    event["referrer"] = referrer
                assert post_event(analytics_url, event, headers) == 202
                pageviews += 1
                ts += timedelta(seconds=rng.randint(15, 240))
            if rng.random() < 0.15:
                plan = rng.choice(["free", "pro", "team"])
                event = {
                    "site_id": site,
                    "event_type": "signup",
                    "url": "https://shop.example/signup",
                    "screen_width": width,
                    "props": {"plan": plan},
                    "timestamp": iso(ts),
                }
                assert post_event(analytics_url, event, headers) == 202
    start_day = (now - timedelta(days=13)).date().isoformat()
    span = {"from": start_day, "to": today()}
    wait_for(lambda: views(analytics_url, site, **span) >= pageviews, timeout=30)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("dashboard", (1280, 900)), ("dashboard-phone", (390, 844))):
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            device_scale_factor=1,
            locale="en-US",
        )
        pg = context.new_page()
        pg.goto(f"{analytics_url}/?site={site}&range=7d")
        expect(pg.locator("#live-indicator")).to_have_attribute("data-state", "live")
        expect(pg.locator("#chart .uplot")).to_have_count(1)
        expect(pg.locator(PAGES_ROWS)).to_have_count(len(paths))
        labels = "#panel-{} tbody td.label".format
        # Each is somewhere in its top 10 (not in a given order: the traffic is random).
        for panel, label in [
            ("locations", "United States"),
            ("locations", "Germany"),
            ("sources", "Google"),
            ("sources", "Hacker News"),
            ("devices", "Safari"),
        ]:
            expect(pg.locator(labels(panel))).to_contain_text([label])
        pg.wait_for_timeout(300)
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        context.close()
    # UPDATE_DOCS_SCREENSHOT=1 refreshes the picture the README shows.
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") and DOCS_SCREENSHOT.parent.is_dir():
        shutil.copyfile(ARTIFACTS / "dashboard.png", DOCS_SCREENSHOT)
