"""POST /event latency on a local Redis Cluster with and without ``REDIS_WAIT_REPLICAS=1``.

Starts a loopback cluster (3 masters + 3 replicas), two ``analytics web`` processes on
one queue (one with WAIT 1, one without; no worker, SQLite) and measures them in
alternating turns in the same run, so both see the same machine::

    .venv/bin/python -m tests.perf.wait_latency [events per turn] [turns]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from tests.cluster.conftest import LocalCluster, _create, _free_cluster_port
from tests.cluster.system import ClusterSystem, cluster_events, new_env

CONCURRENCY = 8


async def measure(base_url: str, events: list[dict[str, object]]) -> list[float]:
    """Per-request latencies (s) of POSTing ``events`` over CONCURRENCY keep-alive links."""
    host, port = base_url.split("://", 1)[1].rsplit(":", 1)
    pending = list(events)
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while pending:
            body = orjson.dumps(pending.pop())
            started = time.perf_counter()
            writer.write(
                b"POST /event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            assert b" 202 " in status, status
        writer.close()

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return latencies


def quantiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms (n={len(values)})"


def main(per_turn: int = 2_000, turns: int = 3) -> None:
    directory = Path(tempfile.mkdtemp(prefix="analytics-perf-cluster-"))
    cluster = LocalCluster(directory, [_free_cluster_port() for _ in range(6)])
    system: ClusterSystem | None = None
    try:
        _create(cluster)
        env = new_env(cluster.url, f"sqlite:///{directory / 'perf.db'}", directory)
        system = ClusterSystem(directory, {**env, "QUEUE_SHARDS": "3"})
        system.init_db()
        urls = {"WAIT 0": system.start_web(), "WAIT 1": system.start_web(REDIS_WAIT_REPLICAS="1")}
        results: dict[str, list[float]] = {name: [] for name in urls}
        events = cluster_events(per_turn * turns * len(urls) + 200, "perf")
        asyncio.run(measure(urls["WAIT 0"], events[:100]))  # warm both up
        asyncio.run(measure(urls["WAIT 1"], events[100:200]))
        offset = 200
        for _ in range(turns):
            for name, url in urls.items():
                part = events[offset : offset + per_turn]
                offset += per_turn
                results[name] += asyncio.run(measure(url, part))
        for name, values in results.items():
            print(f"POST /event, {name}: {quantiles(values)}")
    finally:
        if system is not None:
            system.stop()
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
