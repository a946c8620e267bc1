"""Fixtures for the fault tests: real processes on a fresh MariaDB database each.

``launch`` starts ``analytics web`` (and, if asked, workers) with per-process
environment overrides, so a test can put a :class:`~tests.faults.helpers.TcpProxy`
between one process and one service; everything is stopped and cleaned after.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    LiveServer,
    Proc,
    delete_queue_keys,
    free_port,
    make_settings,
    process_env,
    temporary_mariadb,
    unique_name,
    wait_http,
)
from tests.faults.helpers import TcpProxy

# Short heartbeat so a killed worker's batches are adopted within seconds.
FAULT_ENV = {
    "FLUSH_INTERVAL_MS": "50",
    "WORKER_HEARTBEAT_TTL": "2",
    "WORKER_SHUTDOWN_GRACE": "10",
}


class FaultServer(LiveServer):
    """A :class:`LiveServer` whose web process may get its own environment."""

    def start_worker(self, **extra_env: str) -> Proc:
        env = {**self.env, **extra_env}
        proc = Proc(["worker"], env, self.tmp / f"worker-{len(self.workers)}.log").start()
        proc.wait_for_output("Worker started and connected successfully!", timeout=60)
        self.workers.append(proc)
        return proc

    def cli(
        self, *args: str, timeout: float = 60, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "webapp.cli", *args],
            env={**self.env, **extra_env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def fresh_mariadb(mariadb_server: str) -> Iterator[str]:
    """``mysql+pymysql://root@host:port/<fresh db>``, dropped after the test."""
    with temporary_mariadb(mariadb_server, "analytics_f") as url:
        yield url


@pytest.fixture
def launch(
    tmp_path: Path, fresh_mariadb: str, redis_available: str
) -> Iterator[Callable[..., FaultServer]]:
    """``launch(workers=1, web_env={}, database_url=None, **env)`` -> a running server."""
    servers: list[FaultServer] = []

    def start(
        workers: int = 1,
        web_env: dict[str, str] | None = None,
        database_url: str | None = None,
        **extra: str,
    ) -> FaultServer:
        port = free_port()
        env_vars = {
            "REDIS_URL": redis_available,
            "REDIS_QUEUE_NAME": unique_name("fault_q"),
            "DATABASE_URL": database_url or fresh_mariadb,
            "FLASK_HOST": "127.0.0.1",
            "FLASK_PORT": str(port),
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
            **FAULT_ENV,
            **extra,
        }
        env = process_env(env_vars)
        init = subprocess.run(
            [sys.executable, "-m", "webapp.cli", "init-db"],
            env=env,
            cwd=ROOT,
            capture_output=True,
        )
        assert init.returncode == 0, init.stderr.decode()
        web = Proc(["web"], {**env, **(web_env or {})}, tmp_path / f"web-{port}.log").start()
        server = FaultServer(
            f"http://127.0.0.1:{port}", make_settings(**env_vars), env, tmp_path, web, []
        )
        servers.append(server)
        for _ in range(workers):
            server.start_worker()
        wait_http(server.base_url + "/healthz", timeout=60)
        return server

    yield start
    for server in servers:
        for worker in server.workers:
            if worker.popen.poll() is None:
                worker.popen.kill()
                worker.popen.wait()
        server.web.stop()
        delete_queue_keys(server.settings.redis_url, server.settings.queue_name)


@pytest.fixture
def proxies() -> Iterator[Callable[[str, int], TcpProxy]]:
    made: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
