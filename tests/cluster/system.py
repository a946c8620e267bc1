"""Real ``analytics web`` and ``analytics worker`` processes on the test Redis Cluster.

Any number of web processes and workers share one queue and one fresh MariaDB
database; each may get its own environment (e.g. another ``QUEUE_SHARDS``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_sync

from asyncworker.keys import QueueKeys
from db.settings import Settings
from tests.conftest import (
    ROOT,
    Proc,
    free_port,
    make_settings,
    process_env,
    unique_name,
    wait_http,
)
from tests.faults.helpers import FIXED_DAY, LoadGenerator, LoadResult, sql_rows, stats_total
from tests.helpers import wait_until


def cluster_events(n: int, prefix: str, sites: int = 4) -> list[dict[str, Any]]:
    """``n`` distinct events with event_ids, from many users (so every shard gets some);
    each has its own path, so SQL tells which event was stored how often."""
    return [
        {
            "site_id": f"{prefix}-site-{i % sites}",
            "event_type": "pageview",
            "path": f"/e/{i}",
            "user_id": f"user-{i % 997}",
            "event_id": f"{prefix}-{i}",
            "timestamp": f"{FIXED_DAY}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        }
        for i in range(n)
    ]


class RetryingLoad(LoadGenerator):
    """A load generator whose clients retry a 503 (same body, so same event_id), as a
    well-behaved client does after ``Retry-After``; counts the 503s it saw."""

    unavailable = 0

    async def _post(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
    ) -> int:
        status = 503
        for _ in range(600):
            status = await super()._post(reader, writer, body)
            if status != 503:
                return status
            self.unavailable += 1
            await asyncio.sleep(0.1)
        return status


@dataclass
class ClusterSystem:
    """Web processes and workers on one queue of the cluster and one database."""

    tmp: Path
    env_vars: dict[str, str]
    webs: list[Proc] = field(default_factory=list)
    web_urls: list[str] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return make_settings(**self.env_vars)

    def env(self, **extra: str) -> dict[str, str]:
        return process_env({**self.env_vars, **extra})

    def init_db(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "webapp.cli", "init-db"],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr.decode()

    def start_web(self, **extra: str) -> str:
        port = free_port()
        env = self.env(FLASK_HOST="127.0.0.1", FLASK_PORT=str(port), **extra)
        self.webs.append(Proc(["web"], env, self.tmp / f"web-{port}.log").start())
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", timeout=60)
        self.web_urls.append(url)
        return url

    def start_worker(self, **extra: str) -> Proc:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        proc = Proc(["worker"], self.env(**extra), log).start()
        proc.wait_for_output("Worker started and connected successfully!", timeout=60)
        self.workers.append(proc)
        return proc

    def live_workers(self) -> list[Proc]:
        return [w for w in self.workers if w.popen.poll() is None]

    def stop(self) -> None:
        for proc in [*self.workers, *self.webs]:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait()

    def adoptions(self) -> int:
        return sum(w.output().count("adopting the unfinished batch") for w in self.workers)

    # ------------------------------------------------------------ reading the results

    def redis(self) -> redis_sync.RedisCluster:
        return redis_sync.RedisCluster.from_url(self.env_vars["REDIS_URL"])

    def pending(self, shards: int, live: int) -> tuple[int, bool]:
        """Events in any queue or in-flight list of shards < ``shards``, and whether every
        shard's registrations are exactly the ``live`` workers' (dead ones adopted)."""
        total, registered_ok = 0, True
        with self.redis() as r:
            for shard in range(shards):
                keys = QueueKeys(self.env_vars["REDIS_QUEUE_NAME"], shard)
                total += int(r.llen(keys.queue))
                for key in set(r.scan_iter(match=keys.tag + ":inflight:*")):  # each once
                    items = r.lrange(key, 0, -1)
                    total += sum(1 for item in items if not item.startswith(b"#batch:"))
                registered = int(r.hlen(keys.workers))
                registered_ok &= registered in (0, live) if shard else registered == live
        return total, registered_ok

    def drain(self, shards: int, timeout: float = 180) -> None:
        live = len(self.live_workers())
        wait_until(
            lambda: self.pending(shards, live) == (0, True),
            timeout,
            "every queue and in-flight list to clear and dead workers to be adopted",
        )

    def figures(self, result: LoadResult) -> dict[str, Any]:
        """Stored per site, the stats totals, and the paths stored more than once."""
        settings = self.settings
        per_site = dict(sql_rows(settings, "SELECT site_id, COUNT(*) FROM events GROUP BY site_id"))
        doubled = sql_rows(
            settings, "SELECT path, COUNT(*) FROM events GROUP BY path HAVING COUNT(*) > 1"
        )
        return {
            "stored": {site: int(n) for site, n in per_site.items()},
            "counted": stats_total(self.web_urls[-1], result.accepted_by_site),
            "doubled": doubled,
        }


def new_env(redis_url: str, database_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "REDIS_CLUSTER": "true",
        "REDIS_QUEUE_NAME": unique_name("cq"),
        "DATABASE_URL": database_url,
        "ANALYTICS_DATA_DIR": str(tmp / "data"),
        "FLUSH_INTERVAL_MS": "50",
        "WORKER_HEARTBEAT_TTL": "2",
        "WORKER_SHUTDOWN_GRACE": "10",
        **extra,
    }


def merge(*results: LoadResult) -> LoadResult:
    merged = LoadResult()
    for result in results:
        merged.sent += result.sent
        merged.statuses.update(result.statuses)
        merged.errors.extend(result.errors)
        merged.accepted_by_site.update(result.accepted_by_site)
    return merged
