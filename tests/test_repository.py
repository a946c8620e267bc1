"""Facts about the repository itself that reviewers check by hand otherwise."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT

# Package registries are named in words ("the npm registry", "PyPI"), never by host.
REGISTRY_HOSTS = re.compile(
    r"registry\.npmjs\.org|npmjs\.com|pypi\.org|pythonhosted\.org|deb\.debian\.org", re.I
)


def test_no_registry_host_names_in_tracked_files() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += [f"{name}: {m.group(0)}" for m in REGISTRY_HOSTS.finditer(text)]
    assert found == []
