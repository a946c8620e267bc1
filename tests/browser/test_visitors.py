"""Visitors, visits, sources, devices and places (issue #9) in a real browser, real servers.

The tracker runs on a second origin as on a customer's site; the dashboard then shows the visit
under every panel. A headless browser's tracker events are counted as bots, never as visitors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import ORDINARY_UA, PageProblems, get_json, wait_for, watch
from .test_dashboard import HOSTILE, expect, figure, new_site, today

pytestmark = pytest.mark.browser

# An ordinary phone browser: Chrome on Android.
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
PHONE = {"width": 390, "height": 844}
GOOGLE = "https://www.google.com/"
UTM = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring_sale"}


def aggregate(base: str, site: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(base, "/stats/aggregate", site_id=site, date=today())
    return found


@pytest.fixture
def phone(browser: Any, problems: PageProblems) -> Iterator[Any]:
    """A phone-size context with an ordinary mobile browser's User-Agent."""
    context = browser.new_context(viewport=PHONE, user_agent=PHONE_UA, locale="en-US")
    context.set_default_timeout(20_000)
    try:
        yield context
    finally:
        context.close()


def open_page(context: Any, problems: PageProblems) -> Any:
    pg = context.new_page()
    watch(pg, problems)
    return pg


# Records what the tracker hands to navigator.sendBeacon (a Blob, whose bytes the browser does not
# show to Playwright's network events), in call order, then sends it as usual.
RECORD_BEACONS = """
  window.__sent = [];
  const beacon = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, body) => {
    const i = window.__sent.length;
    window.__sent.push(null);
    body.text().then((text) => { window.__sent[i] = JSON.parse(text); });
    return beacon(url, body);
  };
"""


def beacons(pg: Any, n: int) -> list[dict[str, Any]]:
    """The first n bodies the tracker sent, once they are all there."""
    script = f"window.__sent.length >= {n} && window.__sent.slice(0, {n}).every(Boolean)"
    pg.wait_for_function(script)
    found: list[dict[str, Any]] = pg.evaluate("window.__sent")
    return found[:n]


def tab(pg: Any, panel: str, name: str) -> None:
    pg.click(f"#tab-{panel}-{name}")
    expect(pg.locator(f"#tab-{panel}-{name}")).to_have_attribute("aria-selected", "true")


def labels(pg: Any, panel: str) -> Any:
    return pg.locator(f"#panel-{panel} tbody td.label")


def test_tracker_sends_url_referrer_width_and_props(
    page: Any, problems: PageProblems, second_origin: str
) -> None:
    """What the tracker posts: no server figures needed, the requests themselves are checked."""
    site = new_site("payload")
    page.add_init_script(RECORD_BEACONS)
    landing = f"{second_origin}/shop?{urlencode({'site': site, **UTM})}"
    page.goto(landing, referer=GOOGLE)
    page.wait_for_function("window.analytics && typeof window.analytics.track === 'function'")
    page.evaluate("history.pushState({}, '', '/cart#top')")
    many = {f"k{i}": i for i in range(12)}
    page.evaluate(
        """(many) => {
          window.analytics.track('signup', {plan: 'pro', seats: 3, trial: true, gone: null,
                                            nested: {a: 1}, path: '/cart', user_id: 'u-1'});
          window.analytics.track('download', {props: {path: '/files/a.pdf'}});
          window.analytics.track('many', many);
        }""",
        many,
    )
    first, second, signup, download, lots = beacons(page, 5)
    assert first["url"] == landing and first["path"] == "/shop"
    assert first["referrer"] == GOOGLE
    assert first["screen_width"] == 1280
    assert first["event_type"] == "pageview" and "props" not in first
    assert second["url"] == f"{second_origin}/cart#top" and second["path"] == "/cart"
    assert signup["props"] == {"plan": "pro", "seats": 3, "trial": True}
    assert signup["path"] == "/cart" and signup["user_id"] == "u-1"
    assert download["props"] == {"path": "/files/a.pdf"}
    assert download["path"] == "/cart"
    assert lots["props"] == {f"k{i}": i for i in range(10)}
    # No cookie, no storage.
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    problems.assert_clean()


def test_visit_from_google_on_a_phone_shows_in_every_panel(
    phone: Any, problems: PageProblems, analytics_url: str, second_origin: str
) -> None:
    site = new_site("visit")
    shop = open_page(phone, problems)
    shop.goto(f"{second_origin}/landing?{urlencode({'site': site, **UTM})}", referer=GOOGLE)
    shop.wait_for_function("window.analytics && typeof window.analytics.track === 'function'")
    shop.evaluate("history.pushState({}, '', '/pricing')")
    shop.evaluate(f"window.analytics.track('signup', {{plan: 'pro', note: {json.dumps(HOSTILE)}}})")
    wait_for(lambda: aggregate(analytics_url, site)["pageviews"] >= 2, timeout=30)
    found = wait_for(lambda: (a := aggregate(analytics_url, site))["visits"] >= 1 and a)
    assert (found["visitors"], found["visits"], found["pageviews"]) == (1, 1, 2)

    # The site owner looks at the dashboard on the phone.
    dash = open_page(phone, problems)
    dash.goto(f"{analytics_url}/?site={site}&range=today")
    expect(figure(dash, "visitors")).to_have_text("1")
    expect(figure(dash, "visits")).to_have_text("1")
    expect(figure(dash, "pageviews")).to_have_text("2")
    expect(figure(dash, "views-per-visit")).to_have_text("2")
    expect(figure(dash, "bounce-rate")).to_have_text("0%")
    expect(figure(dash, "visit-duration")).to_have_text(re.compile(r"^0:[0-5][0-9]$"))
    expect(figure(dash, "bots")).to_have_text("0")

    # Sources: from Google, with its UTM tags.
    google = re.compile("google", re.I)
    expect(labels(dash, "sources")).to_have_text([google])
    tab(dash, "sources", "referrer")
    expect(labels(dash, "sources")).to_have_text([google])
    tab(dash, "sources", "utm")
    for name, value in UTM.items():
        dash.select_option("#utm-select", name)
        expect(labels(dash, "sources")).to_have_text([value])
        expect(dash.locator("#panel-sources thead th.label")).to_have_text(name)

    # Pages: both pages; the visit entered on /landing and left from /pricing.
    expect(labels(dash, "pages")).to_have_text(["/landing", "/pricing"])
    # From the keyboard: the arrow keys move along the tabs.
    dash.focus("#tab-pages-page")
    dash.keyboard.press("ArrowRight")
    expect(dash.locator("#tab-pages-entry_page")).to_be_focused()
    expect(dash.locator("#tab-pages-entry_page")).to_have_attribute("aria-selected", "true")
    expect(labels(dash, "pages")).to_have_text(["/landing"])
    tab(dash, "pages", "exit_page")
    expect(labels(dash, "pages")).to_have_text(["/pricing"])

    # Devices: a phone (from the screen width), Chrome on Android (from the User-Agent).
    expect(labels(dash, "devices")).to_have_text([re.compile("Chrome")])
    tab(dash, "devices", "os")
    expect(labels(dash, "devices")).to_have_text([re.compile("Android")])
    tab(dash, "devices", "device")
    expect(labels(dash, "devices")).to_have_text(["Mobile"])

    # Events, and a custom property typed in, kept in the URL, its hostile value shown as text.
    expect(labels(dash, "events")).to_have_text(["pageview", "signup"])
    tab(dash, "events", "props")
    expect(dash.locator("#panel-events [data-role=msg]")).to_contain_text("Type the key")
    dash.fill("#prop-key", "plan")
    dash.press("#prop-key", "Enter")
    expect(dash).to_have_url(re.compile(r"[?&]prop=plan(&|$)"))
    expect(labels(dash, "events")).to_have_text(["pro"])
    dash.fill("#prop-key", "note")
    dash.click("#prop-show")
    expect(labels(dash, "events")).to_have_text([HOSTILE])
    assert dash.locator("img[src=x]").count() == 0
    # A bookmark of that view opens the Properties tab on the same key.
    dash.goto(f"{analytics_url}/?site={site}&range=today&prop=plan")
    expect(dash.locator("#tab-events-props")).to_have_attribute("aria-selected", "true")
    expect(labels(dash, "events")).to_have_text(["pro"])
    # The phone layout: nothing wider than the screen.
    assert dash.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    dash.wait_for_timeout(5500)  # one automatic refresh
    expect(dash.locator("#error-banner")).to_be_hidden()
    problems.assert_clean()


def test_headless_browser_is_a_bot_not_a_visitor(
    browser: Any, page: Any, problems: PageProblems, analytics_url: str, second_origin: str
) -> None:
    site = new_site("bots")
    # An ordinary browser first: one visitor.
    page.goto(f"{second_origin}/?site={site}")
    wait_for(lambda: aggregate(analytics_url, site)["visitors"] == 1)
    before = aggregate(analytics_url, site)
    assert before["bots"] == 0

    # Playwright's default User-Agent says HeadlessChrome.
    headless = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        pg = open_page(headless, problems)
        assert "HeadlessChrome" in pg.evaluate("navigator.userAgent")
        pg.goto(f"{second_origin}/?site={site}")
        pg.wait_for_function("window.analytics && typeof window.analytics.track === 'function'")
        pg.evaluate("history.pushState({}, '', '/crawled')")
        after = wait_for(lambda: (a := aggregate(analytics_url, site))["bots"] >= 2 and a)
    finally:
        headless.close()
    assert after["bots"] == 2
    assert (after["visitors"], after["visits"], after["pageviews"]) == (1, 1, 1)

    page.goto(f"{analytics_url}/?site={site}&range=today")
    expect(figure(page, "bots")).to_have_text("2")
    expect(figure(page, "visitors")).to_have_text("1")
    expect(labels(page, "pages")).to_have_text(["/"])
    assert ORDINARY_UA in page.evaluate("navigator.userAgent")
    problems.assert_clean()


def test_figures_changes_and_labels_are_formatted(
    page: Any, problems: PageProblems, analytics_url: str
) -> None:
    """Fixed API answers (routed): durations, ratios, rates, their changes, flags and tabs."""
    current = {"visitors": 150, "visits": 200, "pageviews": 500, "views_per_visit": 2.5}
    current |= {"bounce_rate": 40, "visit_duration": 3725, "bots": 7}
    previous = {"visitors": 100, "visits": 0, "pageviews": 500, "views_per_visit": 0}
    previous |= {"bounce_rate": 0, "visit_duration": 75, "bots": 0}
    this_period = f"date={today()}"

    def aggregate_answer(route: Any) -> None:
        figures = current if this_period in route.request.url else previous
        route.fulfill(json={"site_id": "s", "from": "", "to": "", **figures})

    def breakdown_answer(route: Any) -> None:
        prop = re.search(r"property=([^&]+)", route.request.url)
        assert prop is not None
        values = {
            "country": ["DE", "US", "zz", HOSTILE],
            "region": ["Bavaria"],
            "city": ["Munich"],
        }.get(prop.group(1), [])
        rows = [{"value": v, "visitors": 9 - i, "visits": 9 - i} for i, v in enumerate(values)]
        route.fulfill(json={"site_id": "s", "property": prop.group(1), "results": rows})

    page.route(re.compile(r"/stats/aggregate\?"), aggregate_answer)
    page.route(re.compile(r"/stats/breakdown\?"), breakdown_answer)
    page.goto(f"{analytics_url}/?site={new_site('formats')}&range=today")

    def change(name: str) -> Any:
        return page.locator(f"#fig-{name} [data-role=change]")

    expect(figure(page, "visitors")).to_have_text("150")
    expect(change("visitors")).to_have_text("▲ 50% vs yesterday (100)")
    expect(change("visitors")).to_have_class(re.compile("change-good"))
    expect(change("pageviews")).to_have_text("±0% vs yesterday (500)")
    # Nothing to compare with: the previous period had no visits.
    expect(change("visits")).to_have_text("\N{NO-BREAK SPACE}")
    expect(change("views-per-visit")).to_have_text("\N{NO-BREAK SPACE}")
    expect(change("bounce-rate")).to_have_text("\N{NO-BREAK SPACE}")
    expect(figure(page, "views-per-visit")).to_have_text("2.5")
    expect(figure(page, "bounce-rate")).to_have_text("40%")
    expect(figure(page, "visit-duration")).to_have_text("1:02:05")
    expect(change("visit-duration")).to_have_text("▲ 4867% vs yesterday (1:15)")
    expect(figure(page, "bots")).to_have_text("7")

    # A lower bounce rate than before is the good direction, in percentage points.
    previous.update(visits=180, bounce_rate=46)
    page.reload()
    expect(change("bounce-rate")).to_have_text("▼ 6 pts vs yesterday (46%)")
    expect(change("bounce-rate")).to_have_class(re.compile("change-good"))

    # Countries with flag and name; an unknown code or hostile value as it is, as text.
    expect(labels(page, "locations")).to_have_text(
        [
            "\U0001f1e9\U0001f1ea Germany",
            "\U0001f1fa\U0001f1f8 United States",
            re.compile("zz|ZZ|Unknown"),
            HOSTILE,
        ]
    )
    assert page.locator("img[src=x]").count() == 0
    # The server has regions (GEOIP_DB): the Regions and Cities tabs are there.
    expect(page.locator("#tab-locations-region")).to_be_visible()
    tab(page, "locations", "city")
    expect(labels(page, "locations")).to_have_text(["Munich"])
    problems.assert_clean()
