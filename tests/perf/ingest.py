"""POST /event throughput: this checkout against another, side by side, in turns.

Not part of the test suite. Starts one ``analytics web`` process (one Hypercorn worker,
SQLite, the local Redis) from each checkout in turn and drives it with ``wrk -t1 -c32``
posting tracker-like events: a realistic User-Agent out of a list, a random client
address in ``X-Forwarded-For``, a page URL with UTM tags, a referrer and a screen width.
A checkout that predates the visitors feature ignores those fields, so both get the
same load. Reports each round and the medians; the machine is shared, so compare the
two columns of one run, not figures across runs.

    python tests/perf/ingest.py --other /path/to/older/checkout [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
]
REFERRERS = ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x"]

WRK_SCRIPT = """
math.randomseed(%(seed)d)
local agents = {%(agents)s}
local referrers = {%(referrers)s}
request = function()
  local ip = string.format("%%d.%%d.%%d.%%d", math.random(1, 223), math.random(0, 255),
    math.random(0, 255), math.random(1, 254))
  local page = "/p/" .. math.random(1, 300)
  local body = '{"site_id":"bench","event_type":"pageview","url":"https://bench.example' ..
    page .. '?utm_source=news&utm_campaign=c' .. math.random(1, 5) .. '","referrer":"' ..
    referrers[math.random(#referrers)] .. '","screen_width":' .. math.random(320, 2560) .. '}'
  return wrk.format("POST", "/event", {["Content-Type"] = "application/json",
    ["User-Agent"] = agents[math.random(#agents)], ["X-Forwarded-For"] = ip}, body)
end
"""


def lua_list(items: list[str]) -> str:
    return ", ".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)


def start_web(checkout: Path, port: int, data: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "FLASK_HOST": "127.0.0.1",
        "FLASK_PORT": str(port),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_QUEUE_NAME": "bench_ingest",
        "DATABASE_URL": f"sqlite:///{data}/bench.db",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef-0123456789",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    subprocess.run(
        [sys.executable, "-m", "webapp.cli", "init-db"], env=env, cwd=checkout, check=True
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "webapp", "--workers", "1"],
        env=env,
        cwd=checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"analytics web from {checkout} did not start")


def run_wrk(port: int, seconds: int, script: Path) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/event",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if match is None or non2xx is not None:
        raise SystemExit(f"wrk failed or got errors:\n{out}")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    checkouts = {"this": ROOT, "other": args.other.resolve()}
    results: dict[str, list[float]] = {name: [] for name in checkouts}
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            WRK_SCRIPT % {"seed": 7, "agents": lua_list(AGENTS), "referrers": lua_list(REFERRERS)}
        )
        for round_no in range(1, args.rounds + 1):
            for name, checkout in checkouts.items():
                data = Path(tmp) / f"{name}-{round_no}"
                data.mkdir()
                proc = start_web(checkout, 5601, data)
                try:
                    run_wrk(5601, 2, script)  # warm up: caches, connections
                    rate = run_wrk(5601, args.seconds, script)
                finally:
                    proc.terminate()
                    proc.wait(30)
                    for key in r.scan_iter(match="*bench_ingest*"):
                        r.delete(key)
                results[name].append(rate)
                print(f"round {round_no} {name:5} {rate:8.0f} req/s", flush=True)
    this, other = statistics.median(results["this"]), statistics.median(results["other"])
    print(f"median this {this:.0f} req/s, other {other:.0f} req/s, ratio {this / other:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
