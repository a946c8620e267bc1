"""Stats benchmark: real Redis queue, real worker processes, real web server, MariaDB.

Run with ``nox -s bench`` (or ``python tests/perf/bench.py``). Not collected by
pytest (the file name does not start with ``test_``).

1. Generates the load: one big site with ``--big`` events (default 2,000,000) on
   one UTC day, plus ``--small-sites`` sites (default 50) with ``--small-per-site``
   events each (default 40,000) over the 30 days ending that day, as visits of
   Zipf-distributed users (``--users``, default 200,000) with realistic devices,
   places, sources, UTM tags, props and ~1% bots (tests/perf/visitors.py);
   Zipf-distributed paths (5,000 per site); 80% pageview, 15% click, 5% signup.
   Events are sessionized and queued in time order, as live traffic arrives.
2. Pushes them onto the Redis queue in the wire format the web edge queues.
3. Starts ``--workers`` ``analytics worker`` processes (by default the README's bulk
   settings: four processes of one loop, ``BATCH_SIZE`` 10000) and measures the drain rate
   (events committed with their rollups per second, until every event is in SQL).
4. Starts ``analytics web`` and measures /stats over HTTP (p50/p95 of ``--runs``
   requests after warm-up) for the big site-day, a small site-day, a 30-day range
   and an hourly time series; then the same figures with the raw-table queries of
   ``tests/reference_sql.py`` (COUNT / COUNT DISTINCT / GROUP BY over ``events``), checking
   they agree with the HTTP answers.
5. Prints a table and writes it as JSON (``--out``).

Needs MariaDB at 127.0.0.1:3306 (root, no password) and Redis at 127.0.0.1:6379
(or BENCH_MARIADB_URL / BENCH_REDIS_URL). Creates and drops database
``analytics_bench`` unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db.event import Event  # noqa: E402
from db.stats import Period  # noqa: E402
from tests.perf import visitors  # noqa: E402
from tests.perf.drain import admin, drain, spawn, stop  # noqa: E402
from tests.perf.visit_queries import percentiles, report_visit_reads, visit_reads  # noqa: E402

BIG_SITE = "big.example"
DAY = date(2024, 6, 15)
DB_NAME = "analytics_bench"
QUEUE = "bench_queue"
TYPES = ["pageview"] * 16 + ["click"] * 3 + ["signup"]


def zipf_cum(n: int, s: float) -> list[float]:
    weights = [1.0 / (k**s) for k in range(1, n + 1)]
    return list(itertools.accumulate(weights))


def zipf_pick(rng: random.Random, cum: list[float]) -> int:
    return bisect.bisect_left(cum, rng.random() * cum[-1])


def generate(args: argparse.Namespace) -> list[tuple[datetime, bytes]]:
    """The events, as visits: each a burst of events of one visitor (Zipf over
    ``--users``) starting at a uniform time, with a geometric number of events (mean
    :data:`~tests.perf.visitors.EVENTS_PER_VISIT`) seconds to minutes apart; paths Zipf."""
    rng = random.Random(42)
    path_cum = zipf_cum(5000, 1.1)
    user_cum = zipf_cum(args.users, 0.9)
    out: list[tuple[datetime, Event, int]] = []
    day0 = datetime.combine(DAY, dtime.min, tzinfo=timezone.utc)

    def events(site: str, n: int, first: datetime, span_us: int, user_offset: int) -> None:
        end = len(out) + n
        while len(out) < end:
            number = (zipf_pick(rng, user_cum) + user_offset) % args.users
            when = first + timedelta(microseconds=rng.randrange(span_us))
            for _ in range(min(visitors.visit_length(rng), end - len(out))):
                path = f"/page/{zipf_pick(rng, path_cum)}"
                etype = TYPES[rng.randrange(len(TYPES))]
                out.append((when, Event(site, etype, path, f"user{number}", when), number))
                when += timedelta(seconds=rng.randrange(5, 300))

    events(BIG_SITE, args.big, day0, 86_400_000_000, 0)
    first = day0 - timedelta(days=29)
    for n in range(args.small_sites):
        events(f"small-{n:02d}.example", args.small_per_site, first, 30 * 86_400_000_000, n * 977)
    return visitors.sessionized(rng, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_http(
    http: httpx.Client, url: str, params: dict[str, str], runs: int
) -> tuple[Any, dict[str, float]]:
    for _ in range(3):
        http.get(url, params=params).raise_for_status()
    samples = []
    body: Any = None
    for _ in range(runs):
        t0 = time.perf_counter()
        response = http.get(url, params=params)
        samples.append(time.perf_counter() - t0)
        response.raise_for_status()
        body = response.json()
    return body, percentiles(samples)


async def time_raw(
    database_url: str, queries: dict[str, tuple[str, Any]], runs: dict[str, int]
) -> dict[str, tuple[Any, dict[str, float]]]:
    from sqlalchemy.ext.asyncio import AsyncSession

    from db.engine import create_engine
    from db.settings import load_settings
    from tests import reference_sql

    settings = load_settings(environ={"DATABASE_URL": database_url}, dotenv_path=None)
    engine = create_engine(settings)
    out: dict[str, tuple[Any, dict[str, float]]] = {}
    try:
        for name, (kind, call_args) in queries.items():
            samples = []
            result: Any = None
            for _ in range(runs[name]):
                async with AsyncSession(engine) as session:
                    t0 = time.perf_counter()
                    if kind == "summary":
                        result = await reference_sql.raw_summary(session, *call_args)
                    else:
                        result = await reference_sql.raw_timeseries(session, *call_args)
                    samples.append(time.perf_counter() - t0)
            out[name] = (result, percentiles(samples))
    finally:
        await engine.dispose()
    return out


def report_drain(args: argparse.Namespace, results: dict[str, Any]) -> int:
    """Print the drain figures (both checkouts' when compared); write them if alone."""
    print()
    for key in ("drain_compared", "drain"):
        if key in results:
            d = results[key]
            print(
                f"Drain ({d['code']}): {d['events']:,} events in {d['seconds']} s = "
                f"{d['events_per_s']:,} events/s "
                f"({args.workers} worker processes x {args.concurrency} loops, BATCH_SIZE "
                f"{args.batch_size}, innodb_buffer_pool_size {buffer_pool_mib()} MiB); CPU seconds "
                f"per 100,000 events: workers {d['worker_cpu_s_per_100k']}, "
                f"MariaDB {d['mariadb_cpu_s_per_100k']}"
            )
    print()
    if args.drain_only:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
        print(f"written to {args.out}")
    return 0


def buffer_pool_mib() -> int:
    """MariaDB's buffer pool, reported beside the drain (it bounds the hot aggregates)."""
    with admin().cursor() as cur:
        cur.execute("SELECT @@innodb_buffer_pool_size")
        return int(cur.fetchone()[0]) // 2**20  # type: ignore[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_int = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
    parser.add_argument("--big", type=int, default=env_int("BENCH_BIG", 2_000_000))
    parser.add_argument("--small-sites", type=int, default=env_int("BENCH_SMALL_SITES", 50))
    parser.add_argument(
        "--small-per-site", type=int, default=env_int("BENCH_SMALL_PER_SITE", 40_000)
    )
    parser.add_argument("--users", type=int, default=env_int("BENCH_USERS", 200_000))
    parser.add_argument("--workers", type=int, default=env_int("BENCH_WORKERS", 4))
    parser.add_argument("--concurrency", type=int, default=env_int("BENCH_CONCURRENCY", 1))
    parser.add_argument("--batch-size", type=int, default=env_int("BATCH_SIZE", 10_000))
    parser.add_argument("--runs", type=int, default=env_int("BENCH_RUNS", 100))
    parser.add_argument("--raw-runs", type=int, default=env_int("BENCH_RAW_RUNS", 5))
    parser.add_argument("--raw-big-runs", type=int, default=env_int("BENCH_RAW_BIG_RUNS", 1))
    parser.add_argument(
        "--out", default=os.environ.get("BENCH_OUT", str(ROOT / "tests/perf/results.json"))
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--compare",
        default=os.environ.get("BENCH_COMPARE", ""),
        help="another checkout (e.g. a worktree of main) whose workers drain the same"
        " messages first, into their own database: before/after in one run",
    )
    parser.add_argument(
        "--drain-only", action="store_true", help="stop after the drain (no query timings)"
    )
    args = parser.parse_args()

    mariadb = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    database_url = f"{mariadb}/{DB_NAME}"
    tmp = Path(tempfile.mkdtemp(prefix="analytics-bench-"))
    print(f"process logs in {tmp}", flush=True)
    total = args.big + args.small_sites * args.small_per_site
    print(f"generating {total:,} events ...", flush=True)
    t0 = time.perf_counter()
    stream = generate(args)
    print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))}
    port = free_port()
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_QUEUE_NAME=QUEUE,
        FLASK_HOST="127.0.0.1",
        FLASK_PORT=str(port),
        WORKER_CONCURRENCY=str(args.concurrency),
        BATCH_SIZE=str(args.batch_size),
        MAX_QUEUE_LENGTH=str(max(total * 2, 1000)),
        ANALYTICS_DATA_DIR=str(tmp / "data"),
        PYTHONUNBUFFERED="1",
        # The web edge needs a key since accounts came; the bench reads /stats openly.
        SECRET_KEY=secrets.token_urlsafe(48),
        PUBLIC_STATS="true",
    )
    wires = [wire for _, wire in stream]
    del stream
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {
        "config": vars(args) | {"total_events": total, "day": DAY.isoformat()}
    }
    try:
        # ---- drain: the compared checkout first (its own database), then this one
        if args.compare:
            print(f"draining with the workers of {args.compare} ...", flush=True)
            results["drain_compared"] = drain(
                Path(args.compare), env, DB_NAME + "_compared", wires, args.workers, tmp
            )
            print(f"  {results['drain_compared']}", flush=True)
            if not args.keep:
                with admin().cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}_compared`")
        print("draining with this checkout's workers ...", flush=True)
        results["drain"] = drain(ROOT, env, DB_NAME, wires, args.workers, tmp)
        results["drain"] |= {"workers": args.workers, "concurrency": args.concurrency}
        print(f"  {results['drain']}", flush=True)
        del wires
        if args.drain_only:
            return report_drain(args, results)

        # ---- /stats over HTTP
        procs.append(spawn(["web"], env, tmp / "web.log", ROOT))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("web did not start")
            time.sleep(0.2)
        small = "small-07.example"
        first = DAY - timedelta(days=29)
        queries: dict[str, tuple[str, dict[str, str], str, Any]] = {
            "big site-day /stats": (
                "/stats",
                {"site_id": BIG_SITE, "date": DAY.isoformat()},
                "summary",
                (BIG_SITE, Period(DAY, DAY), None, 10),
            ),
            "small site-day /stats": (
                "/stats",
                {"site_id": small, "date": DAY.isoformat()},
                "summary",
                (small, Period(DAY, DAY), None, 10),
            ),
            "small site 30-day range": (
                "/stats",
                {"site_id": small, "from": first.isoformat(), "to": DAY.isoformat()},
                "summary",
                (small, Period(first, DAY), None, 10),
            ),
            "big site 30-day range": (
                "/stats",
                {"site_id": BIG_SITE, "from": first.isoformat(), "to": DAY.isoformat()},
                "summary",
                (BIG_SITE, Period(first, DAY), None, 10),
            ),
            "big site-day hourly series": (
                "/stats/timeseries",
                {"site_id": BIG_SITE, "date": DAY.isoformat(), "interval": "hour"},
                "series",
                (BIG_SITE, Period(DAY, DAY), "hour", None),
            ),
        }
        http_results: dict[str, Any] = {}
        with httpx.Client(base_url=base, timeout=600) as http:
            for name, (url, params, _, _) in queries.items():
                body, figures = time_http(http, url, params, args.runs)
                http_results[name] = (body, figures)
                print(f"  http {name}: {figures}", flush=True)
        stop(procs.pop())

        # ---- the same figures from the raw table
        raw_runs = {
            name: (args.raw_big_runs if name.startswith("big") else args.raw_runs)
            for name in queries
        }
        print("raw-table queries (this is the slow part) ...", flush=True)
        raw = asyncio.run(
            time_raw(database_url, {n: (q[2], q[3]) for n, q in queries.items()}, raw_runs)
        )
        table = []
        for name, (_url, _, kind, _) in queries.items():
            body, figures = http_results[name]
            raw_body, raw_figures = raw[name]
            if kind == "summary":
                same = {
                    k: body[k] for k in ("total_views", "unique_users", "top_paths")
                } == raw_body
            else:
                same = body == raw_body
            table.append({"query": name, "rollups": figures, "raw": raw_figures, "equal": same})
        results["stats"] = table

        # ---- visitor and visit reads (db layer) against their plain-SQL reference
        print("visitor and visit reads ...", flush=True)
        results["visit_reads"] = asyncio.run(
            visit_reads(database_url, BIG_SITE, small, DAY, Period(first, DAY), args)
        )
    finally:
        for p in procs:
            stop(p)
        redis.Redis.from_url(redis_url).delete(QUEUE)
        if not args.keep:
            with admin().cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")

    big = next(row for row in results["stats"] if row["query"] == "big site-day /stats")
    small_row = next(row for row in results["stats"] if row["query"] == "small site-day /stats")
    rng30 = next(row for row in results["stats"] if row["query"] == "small site 30-day range")
    results["targets"] = {
        "big day p50 <= 20 ms": big["rollups"]["p50_ms"] <= 20,
        "p50(big day) <= 2 x p50(small day)": big["rollups"]["p50_ms"]
        <= 2 * small_row["rollups"]["p50_ms"],
        "30-day range p50 <= 100 ms": rng30["rollups"]["p50_ms"] <= 100,
        "drain >= 10,000 events/s": results["drain"]["events_per_s"] >= 10_000,
        "every visit read p50 <= 20 ms": all(
            row["rollups"]["p50_ms"] <= 20
            for rows in results["visit_reads"].values()
            for row in rows
        ),
    }
    report_drain(args, results)
    print("| query | rollups p50 | rollups p95 | raw SQL p50 | raw SQL p95 | equal |")
    print("|---|---|---|---|---|---|")
    for row in results["stats"]:
        a, b = row["rollups"], row["raw"]
        print(
            f"| {row['query']} | {a['p50_ms']} ms | {a['p95_ms']} ms | {b['p50_ms']} ms "
            f"| {b['p95_ms']} ms (n={b['runs']}) | {row['equal']} |"
        )
    print()
    report_visit_reads(results)
    for target, ok in results["targets"].items():
        print(f"{'PASS' if ok else 'MISS'}  {target}")
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten to {args.out}")
    reads = [row for rows in results["visit_reads"].values() for row in rows]
    equal = all(row["equal"] for row in results["stats"])
    return 0 if equal and all(row.get("equal", True) for row in reads) else 1


if __name__ == "__main__":
    sys.exit(main())
