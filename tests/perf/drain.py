"""The benchmark's drain: push the wire messages, start real workers, time until stored.

:func:`drain` runs the workers of any checkout (``code``: this one, or e.g. main's, for
the before/after comparison in one run) on the same messages, into a fresh database
initialized by that checkout's own migrations. Completion is read from the batch ledger
(``ingest_batches.events`` counts every message of a committed batch, bots included),
which every version writes the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymysql
import redis


def admin() -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


def spawn(args: list[str], env: dict[str, str], log: Path, code: Path) -> subprocess.Popen[bytes]:
    """``analytics <args>`` from checkout ``code`` (its packages first on the path)."""
    handle = open(log, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", *args],
        env={**env, "PYTHONPATH": str(code)},
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=code,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state, ppid, ... utime is field 14 of stat(5), index 11 here.
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def mariadb_pid() -> int | None:
    for name in ("mariadbd", "mysqld"):
        found = subprocess.run(["pidof", name], capture_output=True, text=True).stdout.split()
        if found:
            return int(found[0])
    return None


def fresh_database(name: str) -> None:
    with admin().cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")


def push(redis_url: str, queue: str, wires: list[bytes]) -> None:
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter(match="{" + queue + "}*"):
        r.delete(key)
    r.delete(queue)
    for start in range(0, len(wires), 10_000):
        r.lpush(queue, *wires[start : start + 10_000])


def drain(
    code: Path, env: dict[str, str], database: str, wires: list[bytes], workers: int, logs: Path
) -> dict[str, Any]:
    """Drain ``wires`` with ``workers`` worker processes of checkout ``code`` into
    ``database`` (created afresh); returns events, seconds and events/s."""
    fresh_database(database)
    mariadb = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306")
    env = {**env, "DATABASE_URL": f"{mariadb}/{database}"}
    subprocess.run(
        [sys.executable, "-m", "webapp.cli", "init-db"],
        env={**env, "PYTHONPATH": str(code)},
        cwd=code,
        check=True,
    )
    push(env["REDIS_URL"], env["REDIS_QUEUE_NAME"], wires)
    total = len(wires)
    procs = []
    database_pid = mariadb_pid()
    database_cpu = cpu_seconds(database_pid) if database_pid else 0.0
    worker_cpu = 0.0
    t_start = time.perf_counter()
    try:
        for n in range(workers):
            procs.append(spawn(["worker"], env, logs / f"worker-{database}-{n}.log", code))
        db = pymysql.connect(
            host="127.0.0.1", user="root", password="", database=database, autocommit=True
        )
        done, last_print = 0, 0.0
        while done < total:
            time.sleep(0.5)
            with db.cursor() as cur:
                cur.execute("SELECT COALESCE(SUM(events), 0) FROM ingest_batches")
                done = int(cur.fetchone()[0])  # type: ignore[index]
            now = time.perf_counter()
            if now - last_print > 10:
                rate = done / (now - t_start)
                print(f"  {done:,} / {total:,} committed ({rate:,.0f} events/s)", flush=True)
                last_print = now
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited; see {logs}/worker-{database}-*.log")
        elapsed = time.perf_counter() - t_start
        # Read while the workers live (they idle once the queue is empty).
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
        if database_pid:
            database_cpu = cpu_seconds(database_pid) - database_cpu
        db.close()
    finally:
        for p in procs:
            stop(p)
    return {
        "code": str(code),
        "events": total,
        "seconds": round(elapsed, 1),
        "events_per_s": round(total / elapsed),
        # CPU per 100,000 events: steadier than events/s on a shared machine.
        "worker_cpu_s_per_100k": round(worker_cpu * 100_000 / total, 2),
        "mariadb_cpu_s_per_100k": round(database_cpu * 100_000 / total, 2)
        if database_pid
        else None,
    }
