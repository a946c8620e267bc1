"""Accounts in a real browser against real servers with PUBLIC_STATS=false.

Sign in, the dashboard, an API key created and revoked, sign out; a share link opens
its own site's dashboard only; hostile strings in emails and site names stay text.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, LiveServer, start_live_server, stop_live_server, temporary_mariadb

from .conftest import PageProblems, post_event
from .test_dashboard import NO_VALUE

pytestmark = pytest.mark.browser

PASSWORD = "browser test password"
HOSTILE_SITE = "<img src=x onerror=alert(1)>"
HOSTILE_EMAIL = '"><script>alert(2)</script>@example.com'


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def cli(server: LiveServer, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "webapp.cli", *args],
        env=server.env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture(scope="module")
def private_server(
    tmp_path_factory: pytest.TempPathFactory, mariadb_server: str, redis_available: str
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("private")
    with temporary_mariadb(mariadb_server, "analytics_private") as url:
        server = start_live_server(tmp, url, redis_available, PUBLIC_STATS="false")
        try:
            cli(server, "users", "add", "admin@example.com", "--password-stdin", stdin=PASSWORD)
            cli(server, "users", "add", "ann@example.com", "--password-stdin", stdin=PASSWORD)
            for site in ("ann-site", "other-site"):
                cli(server, "sites", "add", site, "--owner", "ann@example.com")
                assert post_event(server.base_url, {"site_id": site, "event_type": "pageview"})
            yield server
        finally:
            stop_live_server(server)


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#sign-out")).to_be_visible()


def status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_sign_in_create_and_revoke_a_key_sign_out(
    page: Any, problems: PageProblems, private_server: LiveServer
) -> None:
    base = private_server.base_url
    sign_in(page, base, "ann@example.com")
    expect(page.locator("#site-select option")).to_have_count(2)
    page.get_by_role("link", name="API keys", exact=True).click()
    page.fill("#key-name", "browser")
    page.click("#create-key")
    key = page.locator("#new-key").inner_text().strip()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click("button[data-copy='new-key']")
    expect(page.locator("button[data-copy='new-key']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").strip() == key
    bearer = {"Authorization": f"Bearer {key}"}
    assert status(f"{base}/stats?site_id=ann-site", bearer) == 200
    page.goto(base + "/settings/keys")
    assert key not in page.content()  # shown once
    page.locator(".key-row", has_text="browser").locator(".revoke-key").click()
    expect(page.locator("#page-notice")).to_have_text("Key revoked.")
    assert status(f"{base}/stats?site_id=ann-site", bearer) == 401
    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    problems.assert_clean()


def test_share_link_opens_its_site_only(
    page: Any, problems: PageProblems, private_server: LiveServer
) -> None:
    url = cli(private_server, "sites", "share", "ann-site", "--base-url", private_server.base_url)
    page.goto(url)
    expect(page.locator("#site-select option")).to_have_count(1)
    expect(page.locator("#site-select")).to_have_value("ann-site")
    expect(page.locator("#live-indicator")).not_to_have_attribute("data-state", "connecting")
    # Every data call sends the link's token: figures, chart and panels load, none is refused.
    expect(page.locator("#fig-visits [data-role=value]")).not_to_have_text(NO_VALUE)
    expect(page.locator("#chart .uplot")).to_have_count(1)
    expect(page.locator("#site-view .section-msg.is-error:visible")).to_have_count(0)
    token = url.rsplit("/", 1)[1]
    base = private_server.base_url
    assert status(f"{base}/stats?site_id=other-site", {"X-Share-Token": token}) == 404
    assert status(f"{base}/stats?site_id=ann-site", {"X-Share-Token": token}) == 200
    problems.assert_clean()
    cli(private_server, "sites", "unshare", "ann-site")
    assert status(f"{base}/stats?site_id=ann-site", {"X-Share-Token": token}) == 401


def test_hostile_strings_are_inert(
    page: Any, problems: PageProblems, private_server: LiveServer, tmp_path: Path
) -> None:
    cli(private_server, "users", "add", HOSTILE_EMAIL, "--password-stdin", stdin=PASSWORD)
    sign_in(page, private_server.base_url, HOSTILE_EMAIL)
    page.get_by_role("link", name="Sites", exact=True).click()
    page.fill("#site_id", HOSTILE_SITE)
    page.click("#add-site")
    expect(page.locator(".site-link", has_text=HOSTILE_SITE)).to_be_visible()
    page.get_by_role("link", name="Account", exact=True).click()
    expect(page.locator("#account-email")).to_have_text(HOSTILE_EMAIL.lower())
    assert page.evaluate("document.querySelectorAll('img[src=x], body script').length") == 0
    problems.assert_clean()
