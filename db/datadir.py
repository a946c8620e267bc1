"""The data folder of the embedded quick start: what ``analytics serve`` leaves there for
the commands run beside it.

``serve`` generates ``<data dir>/secret_key`` once and keeps it, and while it runs it
writes ``<data dir>/serve.json`` with the address of its embedded Redis and the URL it
serves. Every command reads both (:func:`db.settings.load_settings`), so that
``analytics users login-link admin@localhost`` run in the same folder signs with the
same key, writes the same SQLite file and prints a link to the running server, and a
command that needs Redis uses that Redis rather than none. Nothing here starts a server.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

SECRET_KEY_FILE = "secret_key"
SERVE_FILE = "serve.json"
# As db.settings.SECRET_KEY_MIN (not imported: settings imports this module).
_KEY_MIN = 32


class DataDirError(Exception):
    """A file of the data folder is unusable; the message is meant for the user, as is."""


def read_secret_key(data_dir: Path) -> str | None:
    """The key ``serve`` generated into ``data_dir``, or None when there is none."""
    path = data_dir / SECRET_KEY_FILE
    if not path.is_file():
        return None
    key = path.read_text().strip()
    if len(key) < _KEY_MIN:
        raise DataDirError(f"{path} holds no usable SECRET_KEY: delete it to get a new one")
    return key


def create_secret_key(data_dir: Path) -> str:
    """A new random key written to ``<data_dir>/secret_key`` (mode 0600, never overwritten)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(data_dir / SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


@dataclass(frozen=True)
class RunningServe:
    """A live ``analytics serve`` of a data folder: its process, its Redis, its URL."""

    pid: int
    redis_url: str
    base_url: str


def write_running_serve(data_dir: Path, serve: RunningServe) -> None:
    """Announce a starting ``serve`` to the commands that will run beside it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    body = {"pid": serve.pid, "redis_url": serve.redis_url, "base_url": serve.base_url}
    tmp = data_dir / (SERVE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(body, file)
    tmp.replace(data_dir / SERVE_FILE)


def clear_running_serve(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / SERVE_FILE).unlink()


def running_serve(data_dir: Path) -> RunningServe | None:
    """The ``serve`` running in ``data_dir``, or None (no file, or one left by a serve
    that died: its process is gone or its Redis socket is)."""
    try:
        found = json.loads((data_dir / SERVE_FILE).read_text())
        serve = RunningServe(int(found["pid"]), str(found["redis_url"]), str(found["base_url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(serve.pid):
        return None
    socket = serve.redis_url.removeprefix("unix://")
    if socket != serve.redis_url and not Path(socket).exists():
        return None
    return serve


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
