"""Commands run beside an embedded ``analytics serve`` use its data folder, key, SQLite
file and Redis; without REDIS_URL and without a serve, a command that needs Redis is one
clear line (it never starts a Redis of its own that no worker reads).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.webapp.test_cli import embedded_serve


def _beside(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``analytics ARGS`` run in ``tmp_path`` as a user would, with no REDIS_URL,
    DATABASE_URL or SECRET_KEY in the environment."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY", "ANALYTICS_DATA_DIR")
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", *args],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_recovery_link_beside_the_embedded_serve(tmp_path: Path) -> None:
    """README's recovery line: ``analytics users login-link admin@localhost`` in the folder
    where ``analytics serve`` runs prints a link to that server, which signs in."""
    with embedded_serve(tmp_path, PUBLIC_STATS="false") as run:
        done = _beside(tmp_path, "users", "login-link", "admin@localhost")
        assert done.returncode == 0, done.stderr
        link = done.stdout.strip().splitlines()[-1]
        assert re.fullmatch(rf"{run.base}/login/once/ln_\S+", link), done.stdout
        with httpx.Client() as browser:
            page = browser.get(link)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert page.status_code == 200 and token, page.text
            landed = browser.post(link, data={"csrf_token": token.group(1)})
            assert landed.status_code == 303 and landed.headers["Location"] == "/account"
            assert browser.get(run.base + "/account").status_code == 200
        # A command that needs Redis reads the serve's own (its socket), not a new one.
        letters = _beside(tmp_path, "dead-letters")
        assert letters.returncode == 0, letters.stderr
        assert "Traceback" not in letters.stderr
        # A second serve in the same folder would share its files: refused in one line.
        again = _beside(tmp_path, "serve", "--port", "1")
        assert again.returncode == 2
        assert again.stderr.strip().startswith("error: `analytics serve` is already running in")
    assert run.code == 0
    assert not (tmp_path / "data" / "serve.json").exists()  # gone with the serve


@pytest.mark.parametrize("command", [["worker"], ["worker", "--check"], ["web"], ["dead-letters"]])
def test_a_command_that_needs_redis_without_one_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    done = _beside(tmp_path, *command, SECRET_KEY="k" * 40)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines() == [
        f"error: REDIS_URL is not set and no `analytics serve` is running in "
        f"{(tmp_path / 'data').resolve()}: set REDIS_URL, or run this beside `analytics serve`"
    ]
    assert not (tmp_path / "data").exists()  # nothing was started there


def test_commands_use_the_key_serve_generated(tmp_path: Path) -> None:
    """A key left by an earlier serve signs what commands make, with no SECRET_KEY set."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret_key").write_text("s" * 48 + "\n")
    assert _beside(tmp_path, "init-db").returncode == 0
    added = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "users", "add", "a@example.com", "--password-stdin"],
        input="a long enough password\n",
        env={k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    done = _beside(tmp_path, "users", "login-link", "a@example.com")
    assert done.returncode == 0, done.stderr
    assert "/login/once/ln_" in done.stdout
