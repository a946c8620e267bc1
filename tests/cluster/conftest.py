"""A real Redis Cluster (3 masters + 3 replicas on loopback) for the cluster tests.

Started once per session from ``redis-server`` processes and ``redis-cli --cluster
create``; every process is killed and its directory removed at the end, even when a
test fails. Under CI a missing ``redis-server`` fails the tests instead of skipping.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_sync

from db.settings import Settings
from tests.cluster.system import ClusterSystem, new_env
from tests.conftest import _unavailable, temporary_mariadb, unique_name
from tests.helpers import poll_until, wait_until

NODES = 6


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@dataclass
class LocalCluster:
    """The processes of a loopback Redis Cluster and what tests do to them."""

    directory: Path
    ports: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        log = open(self.directory / f"redis-{port}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
                "--cluster-node-timeout", "2000",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--daemonize", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def client(self, port: int) -> redis_sync.Redis:
        return redis_sync.Redis(port=port, socket_connect_timeout=1, socket_timeout=2)

    def info(self, port: int) -> str:
        with self.client(port) as c:
            return str(c.execute_command("CLUSTER", "INFO").decode())

    def replicas_of(self, port: int) -> int:
        with self.client(port) as c:
            info = c.info("replication")
        return sum(
            1
            for n in range(int(info.get("connected_slaves", 0)))
            if info.get(f"slave{n}", {}).get("state") == "online"
        )

    def all_ok(self) -> bool:
        for port in self.ports:
            try:
                if "cluster_state:ok" not in self.info(port):
                    return False
            except redis_sync.RedisError:
                return False
        return True

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now (asked of a live node)."""
        alive = next(p for p in self.ports if p in self.procs)
        with redis_sync.RedisCluster(host="127.0.0.1", port=alive, socket_timeout=2) as c:
            node = c.get_node_from_key(key)
            assert node is not None
            return int(node.port)

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again with its nodes.conf; wait until the cluster is whole."""
        self.start_node(port)
        wait_until(self.all_ok, 60, "the restarted node to rejoin the cluster")

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()


def _create(cluster: LocalCluster) -> None:
    for port in cluster.ports:
        cluster.start_node(port)

    def answering() -> bool:
        try:
            return all(cluster.client(p).ping() for p in cluster.ports)
        except redis_sync.RedisError:
            return False

    wait_until(answering, 30, "the redis-server processes to answer")
    created = subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in cluster.ports),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ],
        capture_output=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stdout.decode() + created.stderr.decode()
    wait_until(cluster.all_ok, 60, "cluster_state:ok on every node")
    # Every replica online (synced) with its master, so WAIT 1 is answered from the start.
    ok, infos, _ = poll_until(
        lambda: [cluster.replicas_of(p) for p in cluster.ports],
        lambda counts: counts.count(1) == NODES // 2,
        30,
    )
    assert ok, f"replicas not attached: {infos}"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """One cluster for the whole session (every cluster test reuses it)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        _unavailable("redis-server / redis-cli (for Redis Cluster)", FileNotFoundError("PATH"))
    directory = Path(tempfile.mkdtemp(prefix="analytics-cluster-"))
    cluster = LocalCluster(directory, [_free_cluster_port() for _ in range(NODES)])
    try:
        _create(cluster)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def queue_name() -> str:
    """A queue of its own per test; the session's cluster is thrown away at the end."""
    return unique_name("test_q")


@pytest.fixture(params=[1, 3], ids=["shards1", "shards3"])
def shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def settings_factory(
    settings_factory: Callable[..., Settings], redis_cluster: LocalCluster, shards: int
) -> Callable[..., Settings]:
    """The suite's settings (tests/conftest.py), on the cluster with ``QUEUE_SHARDS`` 1 and 3."""

    def build(database_url: str, **env: str) -> Settings:
        on_cluster = {"REDIS_URL": redis_cluster.url, "REDIS_CLUSTER": "true"}
        return settings_factory(database_url, **{**on_cluster, "QUEUE_SHARDS": str(shards), **env})

    return build


@pytest.fixture
def cluster_system(
    redis_cluster: LocalCluster, mariadb_server: str, tmp_path: Path
) -> Iterator[Callable[..., ClusterSystem]]:
    """``cluster_system(**env)``: a queue on the cluster and a fresh MariaDB database,
    its schema created; web processes and workers are started by the test and all
    killed after it."""
    systems: list[ClusterSystem] = []
    with temporary_mariadb(mariadb_server, "analytics_c") as database_url:

        def make(**env: str) -> ClusterSystem:
            system = ClusterSystem(
                tmp_path, new_env(redis_cluster.url, database_url, tmp_path, **env)
            )
            system.init_db()
            systems.append(system)
            return system

        try:
            yield make
        finally:
            for system in systems:
                system.stop()
