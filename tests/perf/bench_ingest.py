"""``nox -s bench-ingest``: the edge against its ceiling, the batch endpoint, tail latency
and freshness, in one go on this machine. Not part of the test suite.

1. Throughput (``wrk -t1 -c32``, in turns, medians): ``POST /event`` of ``analytics web``
   (one Hypercorn worker) with tracker events (User-Agents, client addresses, URLs with UTM
   tags, referrers, screen widths: everything the visitors feature does per request)
   against a bare ASGI callable doing the JSON parse and LPUSH (``tests/perf/bare_asgi.py``);
   and ``POST /events`` with 100 events per request, in events per second.
2. Tail latency of ``POST /event`` at 50% and 90% of the measured maximum, open loop
   (``tests/perf/loadgen.py``: each latency counted from when the request was due).
3. Freshness: with one ``analytics worker`` at its default settings and a sustained load,
   the time from a probe event's ``202`` to its being counted by ``/stats`` and by
   ``/stats/aggregate``.

Needs the local Redis and MariaDB and ``wrk``. Compare figures within one run: the
machine's two cores are shared with the load generators, Redis and MariaDB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pymysql
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.perf import loadgen  # noqa: E402
from tests.perf.ingest import AGENTS, REFERRERS, WRK_SCRIPT, lua_list, run_wrk  # noqa: E402

QUEUE = "bench_ingest"
DB_NAME = "analytics_bench_ingest"
BATCH_WRK = """
math.randomseed(%(seed)d)
local agents = {%(agents)s}
request = function()
  local ip = string.format("%%d.%%d.%%d.%%d", math.random(1, 223), math.random(0, 255),
    math.random(0, 255), math.random(1, 254))
  local items = {}
  for i = 1, %(size)d do
    items[i] = '{"site_id":"bench","event_type":"pageview","path":"/p/' .. math.random(1, 300) ..
      '","user_id":"u' .. math.random(1, 100000) .. '"}'
  end
  return wrk.format("POST", "/events", {["Content-Type"] = "application/json",
    ["User-Agent"] = agents[math.random(#agents)], ["X-Forwarded-For"] = ip},
    "[" .. table.concat(items, ",") .. "]")
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, path: str = "/healthz") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def flush(r: redis.Redis) -> None:
    for key in r.scan_iter(match="*" + QUEUE + "*"):
        r.delete(key)
    r.delete("bench_bare")


def tracker_request(n: int) -> bytes:
    rng = random.Random(n)
    body = orjson.dumps(
        {
            "site_id": "load",
            "event_type": "pageview",
            "url": f"https://load.example/p/{rng.randint(1, 300)}?utm_source=news",
            "referrer": rng.choice(REFERRERS),
            "screen_width": rng.randint(320, 2560),
        }
    )
    address = (
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": rng.choice(AGENTS),
        "X-Forwarded-For": address,
    }
    return loadgen.request_bytes("/event", body, headers)


def throughput(
    args: argparse.Namespace, ports: dict[str, int], tmp: Path, r: redis.Redis
) -> dict[str, Any]:
    single = tmp / "single.lua"
    single.write_text(
        WRK_SCRIPT % {"seed": 7, "agents": lua_list(AGENTS), "referrers": lua_list(REFERRERS)}
    )
    batch = tmp / "batch.lua"
    batch.write_text(BATCH_WRK % {"seed": 7, "agents": lua_list(AGENTS), "size": args.batch})
    runs: dict[str, list[float]] = {"web": [], "bare": [], "batch": []}
    for round_no in range(1, args.rounds + 1):
        for name, port, script in (
            ("web", ports["web"], single),
            ("bare", ports["bare"], single),
            ("batch", ports["web"], batch),
        ):
            flush(r)
            run_wrk(port, 2, script)  # warm-up
            rate = run_wrk(port, args.seconds, script)
            runs[name].append(rate)
            print(f"  round {round_no} {name:5} {rate:9.0f} req/s", flush=True)
    flush(r)
    medians = {name: statistics.median(v) for name, v in runs.items()}
    return {
        "runs": runs,
        "web_req_s": medians["web"],
        "bare_req_s": medians["bare"],
        "ratio": medians["web"] / medians["bare"],
        "batch_size": args.batch,
        "batch_events_s": medians["batch"] * args.batch,
        "batch_vs_single": medians["batch"] * args.batch / medians["web"],
    }


def latency(args: argparse.Namespace, port: int, ceiling: float, r: redis.Redis) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for share in (0.5, 0.9):
        flush(r)
        rate = ceiling * share
        outcome = asyncio.run(loadgen.run(port, tracker_request, rate, args.latency_seconds))
        found[f"{int(share * 100)}%"] = {
            "rate": round(rate),
            **outcome.summary(),
            "statuses": outcome.statuses,
        }
        print(f"  {share:.0%} of max ({rate:.0f}/s): {found[f'{int(share * 100)}%']}", flush=True)
    flush(r)
    return found


async def freshness(args: argparse.Namespace, port: int) -> dict[str, Any]:
    """Probe events on their own sites while a load runs; time to visibility after 202."""
    seen: dict[str, list[float]] = {"stats": [], "aggregate": []}
    missing = 0

    async def probe(client: httpx.AsyncClient, n: int) -> None:
        nonlocal missing
        site = f"probe-{os.getpid()}-{n}"
        body = {"site_id": site, "event_type": "pageview", "path": "/", "user_id": "p"}
        response = await client.post("/event", json=body)
        accepted = time.perf_counter()
        if response.status_code != 202:
            missing += 1
            return
        pending = {
            "stats": ("/stats", "total_views"),
            "aggregate": ("/stats/aggregate", "pageviews"),
        }
        while pending and time.perf_counter() - accepted < 30:
            for name, (path, field) in list(pending.items()):
                found = await client.get(path, params={"site_id": site})
                if found.status_code == 200 and found.json().get(field) == 1:
                    seen[name].append(time.perf_counter() - accepted)
                    del pending[name]
            await asyncio.sleep(0.01)
        missing += len(pending)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        load = asyncio.create_task(
            loadgen.run(port, tracker_request, args.fresh_rate, args.fresh_seconds, connections=32)
        )
        probes = []
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < args.fresh_seconds:
            probes.append(asyncio.create_task(probe(client, n)))
            n += 1
            await asyncio.sleep(0.25)
        outcome = await load
        await asyncio.gather(*probes)

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return (
            ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000
            if ordered
            else float("nan")
        )

    result: dict[str, Any] = {
        "load": {"rate": args.fresh_rate, **outcome.summary(), "statuses": outcome.statuses}
    }
    for name, values in seen.items():
        result[name] = {
            "probes": len(values),
            "p50_ms": pct(values, 50),
            "p99_ms": pct(values, 99),
            "max_ms": max(values, default=float("nan")) * 1000,
        }
    result["never_seen"] = missing
    return result


def print_table(results: dict[str, Any]) -> None:
    t = results["throughput"]
    rows = [
        ("POST /event, analytics web", f"{t['web_req_s']:,.0f} req/s"),
        ("bare ASGI JSON parse + LPUSH", f"{t['bare_req_s']:,.0f} req/s"),
        ("ratio", f"{t['ratio']:.2f}"),
        (
            f"POST /events ({t['batch_size']} per request)",
            f"{t['batch_events_s']:,.0f} events/s ({t['batch_vs_single']:.1f}x single)",
        ),
    ]
    for share, f in results["latency"].items():
        rows.append(
            (
                f"latency at {share} ({f['rate']}/s)",
                f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
                f"max {f['max_ms']:.1f} ms, {f['over_1s']} over 1 s",
            )
        )
    for name in ("stats", "aggregate"):
        f = results["freshness"][name]
        rows.append(
            (
                f"freshness, /{name}",
                f"p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms, max {f['max_ms']:.0f} ms "
                f"({f['probes']} probes)",
            )
        )
    print("\n| measure | figure |\n|---|---|")
    for name, figure in rows:
        print(f"| {name} | {figure} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument("--fresh-rate", type=int, default=1000)
    parser.add_argument("--fresh-seconds", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "tests/perf/ingest-results.json"))
    args = parser.parse_args()

    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
        cur.execute(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4")
    tmp = Path(tempfile.mkdtemp(prefix="analytics-bench-ingest-"))
    ports = {"web": free_port(), "bare": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))}
    env.update(
        DATABASE_URL=f"mysql://root@127.0.0.1:3306/{DB_NAME}",
        REDIS_URL="redis://127.0.0.1:6379/0",
        REDIS_QUEUE_NAME=QUEUE,
        FLASK_HOST="127.0.0.1",
        FLASK_PORT=str(ports["web"]),
        MAX_QUEUE_LENGTH="100000000",
        SECRET_KEY="bench-secret-key-0123456789abcdef-0123456789",
        PUBLIC_STATS="true",
        ANALYTICS_DATA_DIR=str(tmp / "data"),
    )
    subprocess.run(
        [sys.executable, "-m", "webapp.cli", "init-db"],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    flush(r)
    logs = {name: open(tmp / f"{name}.log", "wb") for name in ("web", "bare", "worker")}  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "webapp", "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=logs["web"],
        stderr=subprocess.STDOUT,
    )
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "tests.perf.bare_asgi:app",
            "--worker-class",
            "uvloop",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{ports['bare']}",
        ],
        env=env,
        cwd=ROOT,
        stdout=logs["bare"],
        stderr=subprocess.STDOUT,
    )
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "config": vars(args)}
    worker = None
    try:
        wait_up(ports["web"])
        wait_up(ports["bare"], "/")
        flush(r)
        print("throughput (wrk -t1 -c32):", flush=True)
        results["throughput"] = throughput(args, ports, tmp, r)
        stop(bare)
        print("latency of POST /event, open loop:", flush=True)
        results["latency"] = latency(args, ports["web"], results["throughput"]["web_req_s"], r)
        print(f"freshness at {args.fresh_rate} events/s for {args.fresh_seconds} s:", flush=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "asyncworker"],
            env=env,
            cwd=ROOT,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
        )
        time.sleep(2)
        results["freshness"] = asyncio.run(freshness(args, ports["web"]))
        print(f"  {results['freshness']}", flush=True)
    finally:
        for proc in (web, bare, worker):
            if proc is not None and proc.poll() is None:
                stop(proc)
        flush(r)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"results in {args.out}; process logs in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
