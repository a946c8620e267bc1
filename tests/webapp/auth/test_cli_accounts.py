"""``analytics users|sites|keys`` and the first run of ``analytics serve``, as subprocesses."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import process_env
from tests.webapp.test_cli import embedded_serve, run_cli


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _add_user(email: str, env: dict[str, str], *flags: str) -> str:
    """``users add EMAIL --password-stdin``, the password piped in as a script would."""
    done = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "users", "add", email, "--password-stdin", *flags],
        input="a long enough password\n",
        env=process_env(env),
        capture_output=True,
        text=True,
    )
    return _ok(done)


def test_account_commands_are_scriptable(sqlite_url: str) -> None:
    env = {"DATABASE_URL": sqlite_url}
    _ok(run_cli("init-db", env=env))
    added = _add_user("Ann@Example.com", env)
    assert added == "User ann@example.com added (admin)"  # the first user is an admin
    # No terminal and no --password-stdin: an error, never a prompt.
    refused = run_cli("users", "add", "bo@example.com", env=env)
    assert refused.returncode == 1 and "--password-stdin" in refused.stderr
    _ok(run_cli("sites", "add", "shop", "--owner", "ann@example.com", env=env))
    _add_user("vi@example.com", env)
    assert _ok(run_cli("sites", "add-viewer", "shop", "vi@example.com", env=env)).endswith("shop")
    key = _ok(run_cli("keys", "create", "--user", "ann@example.com", "--site", "shop", env=env))
    assert re.fullmatch(r"ak_[A-Za-z0-9_-]{43}", key)
    listing = run_cli("keys", "list", env=env).stdout
    assert key not in listing and key[:11] in listing and "shop" in listing
    url = _ok(run_cli("sites", "share", "shop", "--base-url", "https://a.example", env=env))
    assert re.fullmatch(r"https://a\.example/share/sh_[A-Za-z0-9_-]{43}", url)
    assert _ok(run_cli("sites", "unshare", "shop", env=env)) == "1 share link(s) of shop revoked"
    assert _ok(run_cli("keys", "revoke", "1", env=env)) == "Key 1 revoked"
    assert "shop\tann@example.com" in run_cli("sites", "list", env=env).stdout
    last = run_cli("users", "remove", "ann@example.com", env=env)
    assert last.returncode == 1 and "last admin" in last.stderr  # nobody could manage it
    _add_user("ed@example.com", env, "--admin")
    _ok(run_cli("users", "remove", "ann@example.com", env=env))
    listing = run_cli("users", "list", env=env).stdout.strip().splitlines()
    assert sorted(listing) == ["ed@example.com\tadmin", "vi@example.com\tuser"]


def test_web_without_a_secret_key_is_one_line(sqlite_url: str) -> None:
    done = run_cli("web", env={"DATABASE_URL": sqlite_url, "SECRET_KEY": ""})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: SECRET_KEY is not set")
    assert "Traceback" not in done.stderr


def test_serve_first_run_prints_a_sign_in_link(tmp_path: Path) -> None:
    """A fresh machine: serve keeps a generated key and prints a one-time admin link."""
    with embedded_serve(tmp_path, PUBLIC_STATS="false") as run:
        base, log = run.base, run.log
        link = re.search(rf"{base}/login/once/\S+", log.read_text())
        assert link, log.read_text()
        with httpx.Client() as browser:
            page = browser.get(link.group(0))  # a preview's GET uses nothing up
            assert page.status_code == 200 and browser.get(link.group(0)).status_code == 200
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token, page.text
            form = {"csrf_token": token.group(1)}
            landed = browser.post(link.group(0), data=form, follow_redirects=True)
            assert landed.status_code == 200 and str(landed.url).endswith("/account")
            assert browser.get(base + "/stats?site_id=example-site").status_code == 200
            # Used once (with a token of the new CSRF secret: signing in renewed it).
            fresh = re.search(r'name="csrf_token" value="([^"]+)"', landed.text)
            assert fresh and fresh.group(1) != form["csrf_token"]
            again = browser.post(link.group(0), data={"csrf_token": fresh.group(1)})
            assert again.status_code == 404
            assert browser.get(link.group(0)).status_code == 404
        assert httpx.get(base + "/stats?site_id=example-site").status_code == 401
    assert run.code == 0
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32
    assert "Traceback" not in log.read_text()
