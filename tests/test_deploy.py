"""The systemd units in ``deploy/``: they start commands that exist, with the documented
settings, and systemd itself finds nothing wrong in them.

``systemd-analyze verify`` checks every key and value (it only warns, on stderr, about
an unknown key, so the test requires a silent stderr); the commands are checked with
the ``analytics`` command's own parser, and the example environment file with the
settings loader, so a renamed subcommand, flag or setting fails here.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from db.settings import load_settings
from tests.conftest import ROOT
from webapp.cli import build_parser

DEPLOY = ROOT / "deploy"
UNITS = {"analytics-web.service": "web", "analytics-worker.service": "worker"}
VENV_COMMAND = "/opt/analytics/venv/bin/analytics"
ENV_FILE = "/etc/analytics/analytics.env"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / name)
    return parser


@pytest.mark.parametrize(("name", "command"), UNITS.items())
def test_unit_runs_a_real_analytics_command(name: str, command: str) -> None:
    unit = _unit(name)
    service = unit["Service"]
    program, *args = shlex.split(service["ExecStart"])
    assert program == VENV_COMMAND and args[0] == command
    build_parser().parse_args(args)  # exits (SystemExit) on an unknown subcommand or flag
    assert service["EnvironmentFile"] == ENV_FILE
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_worker_stop_timeout_outlasts_its_grace_period() -> None:
    """systemd must not SIGKILL a worker that is still finishing its batches."""
    example = {k: v for k, v in dotenv_values(DEPLOY / "analytics.env.example").items() if v}
    grace = load_settings(environ=example, dotenv_path=None).shutdown_grace_s
    stop = float(_unit("analytics-worker.service")["Service"]["TimeoutStopSec"])
    assert stop > grace + 5


def test_example_environment_is_valid_settings() -> None:
    example = {k: v for k, v in dotenv_values(DEPLOY / "analytics.env.example").items() if v}
    settings = load_settings(environ=example, dotenv_path=None)
    assert settings.require_secret_key()
    assert settings.database_url.get_backend_name() == "mysql"


@pytest.mark.parametrize("name", UNITS)
def test_systemd_finds_nothing_wrong(name: str, tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    if verify is None:
        # Not a service the suite needs: without systemd the tests above still parse
        # the units and check their commands and settings.
        pytest.skip("systemd-analyze is not installed; the units are checked by parsing only")
    # The paths of an installed system, pointed at this checkout: verify checks that
    # the program and the environment file exist, and that the user does.
    text = (DEPLOY / name).read_text()
    text = text.replace(VENV_COMMAND, str(shutil.which("true")))
    text = text.replace(ENV_FILE, str(DEPLOY / "analytics.env.example"))
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("User=", "Group=")))
    (tmp_path / name).write_text(text + "\n")
    done = subprocess.run(
        [verify, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
