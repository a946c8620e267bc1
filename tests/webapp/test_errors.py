"""One error path: the HTTPError type, its JSON, the handlers, CORS, and a failed start-up.

Handlers run in a real Flask app; the bridge's early answers and its lifespan run
through the real :class:`~webapp.bridge.AsgiBridge`; the start-up failure runs the
real ``analytics web`` process, made to fail the way a deployment can: a SQLite
``DATABASE_URL`` whose directory cannot be created.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from tests.conftest import ROOT, free_port, process_env, wait_http
from tests.helpers import wait_until
from webapp import cors, errors
from webapp.bridge import AsgiBridge
from webapp.errors import HTTPError


def _app() -> Flask:
    app = Flask(__name__)
    errors.register(app)

    @app.get("/refused")
    def refused() -> str:
        raise HTTPError.retry_later(503, "queue is full, retry later", 10)

    @app.get("/redis")
    def redis_down() -> str:
        raise RedisConnectionError("connection refused")

    @app.get("/database")
    def database_down() -> str:
        raise OperationalError("SELECT 1", {}, Exception("gone"))

    @app.get("/bug")
    def bug() -> str:
        raise RuntimeError("a bug")

    return app


def test_error_body_is_the_one_json_shape() -> None:
    assert orjson.loads(errors.error_body('say "no"')) == {"error": 'say "no"'}


def test_retry_later_sets_retry_after() -> None:
    error = HTTPError.retry_later(503, "later", 7)
    assert (error.status, error.message) == (503, "later")
    assert dict(error.headers) == {"Retry-After": "7"}
    assert dict(HTTPError(400, "bad").headers) == {}


@pytest.mark.parametrize(
    ("path", "status", "message", "retry_after"),
    [
        ("/refused", 503, "queue is full, retry later", "10"),
        ("/redis", 503, "queue unavailable, retry later", "5"),
        ("/database", 503, "database unavailable, retry later", "5"),
        ("/bug", 500, "internal error", None),
        ("/nowhere", 404, None, None),
    ],
)
def test_handlers_answer_json(
    path: str, status: int, message: str | None, retry_after: str | None
) -> None:
    response = _app().test_client().get(path)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = orjson.loads(response.data)
    assert set(body) == {"error"}
    if message is not None:
        assert body["error"] == message
    assert response.headers.get("Retry-After") == retry_after


def test_routing_error_keeps_its_headers() -> None:
    response = _app().test_client().post("/bug")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
    assert response.mimetype == "application/json"
    assert set(orjson.loads(response.data)) == {"error"}


def test_unexpected_error_logs_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="webapp"):
        _app().test_client().get("/bug")
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


class _Recorder:
    def __init__(self, incoming: list[dict[str, Any]] | None = None) -> None:
        self.incoming = list(incoming or [])
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return self.incoming.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def test_bridge_early_error_is_the_same_json_with_cors() -> None:
    bridge = AsgiBridge(_app())
    scope = {"type": "http", "method": "POST", "path": "/event", "headers": []}
    scope["headers"] = [(b"content-length", b"not a number")]
    wire = _Recorder()
    await bridge(scope, wire.receive, wire.send)  # type: ignore[arg-type]
    start, body = wire.sent
    assert start["status"] == 400
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body["body"]))
    for name, value in cors.ANY_ORIGIN.items():
        assert headers[name.lower()] == value
    assert body["body"] == errors.error_body("invalid Content-Length header")


async def test_failed_startup_logs_traceback_and_reports_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def startup() -> None:
        raise FileExistsError("data directory is a file")

    bridge = AsgiBridge(_app(), on_startup=startup)
    wire = _Recorder([{"type": "lifespan.startup"}])
    with caplog.at_level(logging.ERROR, logger="webapp"):
        await bridge({"type": "lifespan"}, wire.receive, wire.send)  # type: ignore[arg-type]
    assert wire.sent == [{"type": "lifespan.startup.failed", "message": "data directory is a file"}]
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None and record.exc_info[0] is FileExistsError
    assert "start-up failed" in record.getMessage()


@contextlib.contextmanager
def _web(
    tmp_path: Path, database_url: str, redis_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real ``analytics web`` process and its base URL; killed if a test leaves it running."""
    port = free_port()
    env = process_env(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "FLASK_HOST": "127.0.0.1",
            "FLASK_PORT": str(port),
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
        }
    )
    command = [sys.executable, "-m", "webapp.cli", "web"]
    log = tmp_path / "web.log"
    with (
        open(log, "wb") as out,
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT) as proc,
    ):
        _LOGS[proc.pid] = log
        try:
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            if proc.poll() is None:
                proc.kill()


# The log file of each process ``_web`` started, by pid.
_LOGS: dict[int, Path] = {}


def _output(proc: subprocess.Popen[bytes]) -> str:
    """What the process printed so far."""
    return _LOGS[proc.pid].read_text(errors="replace")


def _exit(proc: subprocess.Popen[bytes], sig: int | None = None) -> tuple[int, str]:
    """Send ``sig`` if given, wait for the process to end: its exit status and output."""
    if sig is not None:
        proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc.returncode, _output(proc)


def test_web_exits_nonzero_with_traceback_when_startup_fails(
    tmp_path: Path, redis_available: str
) -> None:
    """Hypercorn alone would log the failure and exit 0; a service manager must see a crash."""
    (tmp_path / "not-a-directory").write_text("")
    database_url = f"sqlite:///{tmp_path / 'not-a-directory' / 'analytics.db'}"
    with _web(tmp_path, database_url, redis_available) as (proc, _):
        code, text = _exit(proc)
    assert code != 0, text
    assert "start-up failed, the server stops: FileExistsError" in text
    assert "Traceback (most recent call last):" in text
    assert "in open_resources" in text


def test_web_stopped_by_sigterm_exits_zero(tmp_path: Path, redis_available: str) -> None:
    """The supervisor that keeps a failed worker's status still stops cleanly when asked."""
    with _web(tmp_path, f"sqlite:///{tmp_path / 'analytics.db'}", redis_available) as (proc, url):
        wait_http(url + "/healthz")
        code, text = _exit(proc, signal.SIGTERM)
    assert code == 0, text


def test_web_restarts_its_workers_on_sighup(tmp_path: Path, redis_available: str) -> None:
    """SIGHUP restarts the workers, as Hypercorn's own supervisor did, and then still serves."""
    with _web(tmp_path, f"sqlite:///{tmp_path / 'analytics.db'}", redis_available) as (proc, url):
        wait_http(url + "/healthz")
        proc.send_signal(signal.SIGHUP)
        restarted = lambda: _output(proc).count("Running on http://127.0.0.1") == 2  # noqa: E731
        wait_until(restarted, 30, "the workers to restart")
        assert proc.poll() is None
        wait_http(url + "/healthz")
        code, text = _exit(proc, signal.SIGTERM)
    assert code == 0, text
    assert text.count("Running on http://127.0.0.1") == 2, text


@pytest.mark.parametrize(
    ("codes", "asked", "expected"),
    [
        ([0, 0], {"stop"}, 0),  # asked to stop, both stopped cleanly
        ([0, 0], {"restart"}, None),  # SIGHUP: start the workers again
        ([0, -15], {"restart"}, 143),  # a worker killed during a restart is a failure
        ([3, 0], {"restart"}, 3),  # a worker that failed while restarting
        ([0, 1], {"stop"}, 1),  # asked to stop, but a worker failed on its way out
        ([0, 0], set(), 1),  # every worker exited on its own: nothing serves any more
        ([0, 0], {"restart", "stop"}, 0),  # a stop during a restart wins
    ],
)
def test_supervisor_exit_status(codes: list[int], asked: set[str], expected: int | None) -> None:
    from webapp.serve import _outcome

    assert _outcome(codes, asked) == expected
