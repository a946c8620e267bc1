"""The figures of docs/scaling.md: events/s per web process and per worker process, on one
Redis and on a local Redis Cluster (3 masters + 3 replicas) with 1 and 3 queue shards,
with and without ``REDIS_WAIT_REPLICAS=1``. Not collected by pytest.

Every variant is measured in each of ``turns`` rounds, in turn, in one run (the machine
is shared: compare medians of the same run, not runs)::

    .venv/bin/python -m tests.perf.scaling [seconds per web turn] [events per drain] [turns]

- web: one ``analytics web`` process (one Hypercorn worker, no queue consumer running),
  ``wrk -t1 -c32 -d<s>`` posting a small event with a new ``user_id`` each time (so the
  events spread over the shards); requests/s answered 202.
- worker: ``events`` preloaded on the queue (spread over the shards as the web edge
  would), one ``analytics worker`` (defaults: 4 consumers per shard, batches of 500) into
  MariaDB; events/s from its start line until its ``METRICS_PORT`` says all are stored.

Needs Redis at 127.0.0.1:6379, MariaDB at 127.0.0.1:3306 (root, no password), wrk and
redis-server on the PATH.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import httpx
import redis as redis_sync

from asyncworker.keys import QueueKeys, shard_of
from db.event import validate_event
from tests.cluster.conftest import LocalCluster, _create, _free_cluster_port
from tests.conftest import (
    Proc,
    delete_queue_keys,
    free_port,
    process_env,
    temporary_mariadb,
    wait_http,
)
from tests.helpers import wait_until
from tests.webapp.test_metrics import samples

SINGLE = "redis://127.0.0.1:6379/0"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306"
LUA = """
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = '{"site_id":"perf","event_type":"pageview","path":"/p","user_id":"u'
    .. counter .. '"}'
  return wrk.format(nil, "/event", nil, body)
end
"""


def distinct_masters_name(cluster: LocalCluster, shards: int) -> str:
    """A queue name whose ``shards`` shards live on as many different masters."""
    while True:
        name = f"perf_{uuid.uuid4().hex[:8]}"
        masters = {cluster.master_of(QueueKeys(name, i).queue) for i in range(shards)}
        if len(masters) == shards:
            return name


def web_rate(base_url: str, seconds: int, script: Path) -> float:
    """Requests/s answered 202 by wrk -t1 -c32 over ``seconds``."""
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script), base_url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate * (1 - (int(failed.group(1)) / total if failed else 0.0))


def preload(env: dict[str, str], events: int) -> None:
    """``events`` wire messages pushed onto their shards, as the web edge would place them."""
    shards, name = int(env.get("QUEUE_SHARDS", "1")), env["REDIS_QUEUE_NAME"]
    client = client_of(env)
    now = datetime.now(timezone.utc)
    pipe = client.pipeline(transaction=False)
    for i in range(events):
        user = f"u{i % 5000}"
        data = {"site_id": f"perf{i % 10}", "event_type": "pageview", "path": f"/p{i % 50}"}
        wire = validate_event({**data, "user_id": user}, now).to_wire()
        pipe.lpush(QueueKeys(name, shard_of(data["site_id"], user, shards)).queue, wire)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


def drain_rate(env: dict[str, str], events: int, tmp: Path) -> float:
    """Events/s one worker process stores ``events`` preloaded ones at."""
    preload(env, events)
    port = free_port()
    log = tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
    worker = Proc(["worker"], process_env({**env, "METRICS_PORT": str(port)}), log).start()
    try:
        worker.wait_for_output("Worker started and connected successfully!", 60)
        started = time.perf_counter()
        url = f"http://127.0.0.1:{port}/metrics"

        def stored() -> float:
            return samples(httpx.get(url).text).get(("analytics_events_stored_total", ()), 0)

        wait_until(lambda: stored() >= events, 300, "the worker to store every event", 0.05)
        return events / (time.perf_counter() - started)
    finally:
        worker.stop()


def measure(variants: dict[str, Callable[[], float]], turns: int) -> dict[str, list[float]]:
    """Each variant once per turn, in turn; every figure kept."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(turns):
        for name, run in variants.items():
            results[name].append(run())
            print(f"  {name}: {results[name][-1]:,.0f}/s", flush=True)
    return results


def report(title: str, results: dict[str, list[float]]) -> None:
    print(f"\n{title} (median of {len(next(iter(results.values())))} turns)")
    for name, values in results.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):,.0f} | {runs} |")


def variants(cluster: LocalCluster, database_url: str) -> dict[str, dict[str, str]]:
    """The settings of each variant, each on a queue of its own."""
    base = {"DATABASE_URL": database_url, "FLUSH_INTERVAL_MS": "200"}
    on_cluster = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true"}
    setups = {
        "one Redis": {"REDIS_URL": SINGLE, "REDIS_QUEUE_NAME": f"perf_{uuid.uuid4().hex[:8]}"},
        "cluster, 1 shard": {**on_cluster, "QUEUE_SHARDS": "1"},
        "cluster, 3 shards": {**on_cluster, "QUEUE_SHARDS": "3"},
        "cluster, 3 shards, WAIT 1": {
            **on_cluster, "QUEUE_SHARDS": "3", "REDIS_WAIT_REPLICAS": "1"
        },
    }  # fmt: skip
    for extra in setups.values():
        extra.setdefault("REDIS_QUEUE_NAME", distinct_masters_name(cluster, 3))
    return {name: {**base, **extra} for name, extra in setups.items()}


def client_of(env: dict[str, str]) -> redis_sync.Redis | redis_sync.RedisCluster:
    cluster = env.get("REDIS_CLUSTER") == "true"
    return (redis_sync.RedisCluster if cluster else redis_sync.Redis).from_url(env["REDIS_URL"])


def web_turns(
    envs: dict[str, dict[str, str]], seconds: int, turns: int, tmp: Path
) -> dict[str, list[float]]:
    """One web process per variant, all up at once, measured in turns."""
    script = tmp / "post.lua"
    script.write_text(LUA)
    webs, urls = [], {}
    try:
        for name, env in envs.items():
            port = free_port()
            web_env = process_env({**env, "FLASK_HOST": "127.0.0.1", "FLASK_PORT": str(port)})
            webs.append(Proc(["web"], web_env, tmp / f"web-{port}.log").start())
            urls[name] = f"http://127.0.0.1:{port}"
            wait_http(urls[name] + "/healthz", 60)
        print("web, POST /event")
        return measure(
            {n: (lambda u=u: web_rate(u, seconds, script)) for n, u in urls.items()}, turns
        )
    finally:
        for proc in webs:
            proc.stop()
        for env in envs.values():  # what the web turns queued is not part of the drains
            with client_of(env) as r:
                for shard in range(3):
                    r.delete(QueueKeys(env["REDIS_QUEUE_NAME"], shard).queue)


def main(seconds: int = 6, events: int = 40_000, turns: int = 3) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="analytics-scaling-"))
    cluster = LocalCluster(tmp, [_free_cluster_port() for _ in range(6)])
    with temporary_mariadb(MARIADB, "analytics_scaling") as database_url:
        try:
            _create(cluster)
            envs = variants(cluster, database_url)
            init = [sys.executable, "-m", "webapp.cli", "init-db"]
            subprocess.run(
                init, env=process_env(envs["one Redis"]), check=True, capture_output=True
            )
            web = web_turns(envs, seconds, turns, tmp)
            print("worker drain")
            drains = measure(
                {n: (lambda e=e: drain_rate(e, events, tmp)) for n, e in envs.items()}, turns
            )
            report("web process: POST /event answered 202 per second", web)
            report(f"worker process: events stored per second ({events:,} preloaded)", drains)
        finally:
            cluster.stop()
            delete_queue_keys(SINGLE, envs["one Redis"]["REDIS_QUEUE_NAME"])
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
