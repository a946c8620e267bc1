"""The ``analytics`` command as a user runs it: real subprocesses, real services."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pymysql
import pytest

from tests.conftest import ROOT, Proc, free_port, process_env, wait_http
from tests.helpers import poll


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", *args],
        env=process_env(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_init_db_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        done = run_cli("init-db", env={"DATABASE_URL": database_url})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "Tables created!"


def test_init_db_adopts_the_original_apps_table(mariadb_url: str) -> None:
    """An ``events`` table made by the original create_tables.py keeps its rows."""
    database = mariadb_url.rsplit("/", 1)[1]
    conn = pymysql.connect(host="127.0.0.1", user="root", database=database, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTO_INCREMENT,"
            " site_id VARCHAR(255) NOT NULL, event_type VARCHAR(255) NOT NULL,"
            " path VARCHAR(500) NULL, user_id VARCHAR(255) NULL, timestamp DATETIME NOT NULL)"
        )
        cur.execute(
            "INSERT INTO events (site_id, event_type, path, user_id, timestamp)"
            " VALUES ('site123', 'pageview', '/home', 'user456', '2024-01-15 10:30:00')"
        )
    done = run_cli("init-db", env={"DATABASE_URL": mariadb_url})
    assert done.returncode == 0, done.stderr
    with conn.cursor() as cur:
        cur.execute("SELECT site_id, path FROM events")
        assert cur.fetchall() == (("site123", "/home"),)
        cur.execute("SHOW TABLES")
        assert {"events", "ingest_batches", "alembic_version"} <= {r[0] for r in cur.fetchall()}
    conn.close()


@pytest.mark.parametrize(
    ("command", "env", "line"),
    [
        (["web"], {"FLASK_PORT": "http"}, "error: FLASK_PORT must be an integer, got 'http'"),
        (["worker"], {"DATABASE_URL": "postgresql://h/db"}, "error: DATABASE_URL must be a"),
        (["init-db"], {"DATABASE_URL": "mysql://root@127.0.0.1:1/x"}, "error: OperationalError"),
        (["serve"], {"WORKER_CONCURRENCY": "0"}, "error: WORKER_CONCURRENCY must be between"),
        (["worker"], {"LOG_FORMAT": "xml"}, "error: LOG_FORMAT must be text or json, got 'xml'"),
        (["web"], {"LOG_FORMAT": "JSONL"}, "error: LOG_FORMAT must be text or json"),
        (
            ["worker"],
            {
                "DATABASE_URL": "mysql://root@127.0.0.1:3306/no_such_database_here",
                "REDIS_URL": "redis://127.0.0.1:6379/0",
            },
            "error: database unknown database",
        ),
    ],
)
def test_bad_configuration_is_one_line_not_a_traceback(
    command: list[str], env: dict[str, str], line: str
) -> None:
    done = run_cli(*command, env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(line)
    assert "Traceback" not in done.stderr


def test_worker_check_without_a_worker_exits_1(redis_available: str, queue_name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncworker", "--check"],
        env=process_env({"REDIS_URL": redis_available, "REDIS_QUEUE_NAME": queue_name}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "no worker heartbeat" in done.stdout


def test_worker_waits_for_the_database_instead_of_crashing(
    redis_available: str, queue_name: str, tmp_path: Path
) -> None:
    env = process_env(
        {
            "REDIS_URL": redis_available,
            "REDIS_QUEUE_NAME": queue_name,
            "DATABASE_URL": "mysql+pymysql://root@127.0.0.1:1/nowhere",
        }
    )
    worker = Proc(["worker"], env, tmp_path / "worker.log").start()
    try:
        worker.wait_for_output("waiting for Redis and the database")
        time.sleep(1.5)
        assert worker.popen.poll() is None, worker.output()
    finally:
        assert worker.stop() == 0
    assert "Traceback" not in worker.output()
    assert worker.output().count("waiting for Redis and the database") == 1


@dataclass
class ServeRun:
    """An ``analytics serve`` started with no REDIS_URL/DATABASE_URL (embedded services)."""

    base: str
    log: Path
    code: int | None = None


@contextlib.contextmanager
def embedded_serve(
    tmp_path: Path, serve_args: Sequence[str] = (), **env: str
) -> Iterator[ServeRun]:
    """Run ``analytics serve [serve_args]`` in ``tmp_path`` until the block ends, then
    Ctrl-C it and keep its exit status in ``code``; it answers on ``base`` when the block
    starts."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    environ.pop("SECRET_KEY", None)  # serve generates one into the data directory
    environ.update(FLASK_PORT=str(port), ANALYTICS_DATA_DIR=str(tmp_path / "data"))
    environ.update(PYTHONUNBUFFERED="1", **env)
    run = ServeRun(f"http://127.0.0.1:{port}", tmp_path / "serve.log")
    with open(run.log, "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "webapp.cli", "serve", *serve_args],
            env=environ,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(run.base + "/healthz", timeout=60)
            yield run
        finally:
            serve.send_signal(signal.SIGINT)
            run.code = serve.wait(60)


def test_serve_runs_everything_embedded(tmp_path: Path) -> None:
    """No REDIS_URL, no DATABASE_URL: embedded Redis + SQLite, README example, clean Ctrl-C."""
    with embedded_serve(tmp_path, FLUSH_INTERVAL_MS="50", PUBLIC_STATS="true") as run:
        base = run.base
        event = {
            "site_id": "example-site",
            "event_type": "pageview",
            "path": "/home",
            "user_id": "user123",
            "timestamp": "2024-01-15T10:30:00Z",
        }
        assert httpx.post(base + "/event", json=event).status_code == 202
        expected = {
            "site_id": "example-site",
            "date": "2024-01-15",
            "total_views": 1,
            "unique_users": 1,
            "top_paths": [{"path": "/home", "views": 1}],
        }
        got = poll(
            lambda: httpx.get(
                base + "/stats", params={"site_id": "example-site", "date": "2024-01-15"}
            ).json(),
            expected,
        )
        assert got == expected
    output, code, port = run.log.read_text(), run.code, base.rsplit(":", 1)[1]
    assert code == 0, output
    assert f"open http://127.0.0.1:{port}/" in output
    assert "Worker started and connected successfully!" in output
    assert "Traceback" not in output
    # Ctrl-C is one graceful stop for the worker, not the second, immediate-stop signal.
    assert "finishing batches in flight" in output
    assert "stopping now" not in output
    assert "worker stopped: 1 events stored this run" in output
    assert (tmp_path / "data" / "analytics.db").is_file()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_hypercorn_command_line_serves_the_app(
    mariadb_url: str, redis_available: str, queue_name: str, tmp_path: Path
) -> None:
    """``hypercorn -k uvloop webapp.asgi:app`` works as documented, with two workers."""
    env = process_env(
        {"DATABASE_URL": mariadb_url, "REDIS_URL": redis_available, "REDIS_QUEUE_NAME": queue_name}
    )
    assert run_cli("init-db", env=env).returncode == 0
    port = free_port()
    with open(tmp_path / "hypercorn.log", "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "-k", "uvloop", "-w", "2",
             "-b", f"127.0.0.1:{port}", "webapp.asgi:app"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            for _ in range(10):
                response = httpx.post(base + "/event", json={"site_id": "h", "event_type": "x"})
                assert response.status_code == 202
            assert httpx.get(base + "/readyz").json()["queue_length"] == 10
        finally:
            server.terminate()
            server.wait(30)
