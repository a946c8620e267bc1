"""Sign-in under attack against a real ``analytics web``: ``POST /event``'s latency while 300
clients keep signing in with wrong passwords, against its latency with nothing else going
on, side by side in one run; no connection dropped.

Each attacker has its own address (``X-Forwarded-For`` from 127.0.0.1, a trusted proxy)
and its own account, so that no limit refuses it early: every attempt it is allowed
wants an argon2 check, the heaviest case for the server. Events are sent open loop (on
schedule, each latency counted from when it was due, as tests/perf/loadgen.py does).

The figures (p50, p90, p99 of both) are printed; the idle and attacked phases alternate,
so that a noisy minute hits both alike. The p99 is not asserted: on this shared two-core
machine other test runs stall the server for hundreds of milliseconds at random (idle
p99 measured anywhere from 8 ms to 1.7 s), so one stall decides a p99 of a few hundred
samples. What is asserted is what a stall does not fake: no connection dropped, every
event answered 202, and the p90 under attack within ``P90_RATIO_BOUND`` times the idle
p90 (measured here: 1.3 to 2.8). Before the fix every check ran on the event loop and
events waited behind them: p90 39 s against 5 ms idle, p99 47.5 s against 26 ms.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Proc, free_port, process_env, wait_http

pytestmark = pytest.mark.slow

ATTACKERS = 300
EVENT_RATE = 100  # events a second, open loop
SECONDS = 4.0  # each phase; ROUNDS of (idle, under attack)
ROUNDS = 3
# Generous (see the module docstring); the budget is 2x at p99.
P90_RATIO_BOUND = 10.0


def _request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.dropped = 0

    def add(self, status: int, latency: float | None = None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if latency is not None:
            self.latencies.append(latency)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


async def _events(port: int, seconds: float, tally: Tally) -> None:
    """EVENT_RATE events a second over 16 keep-alive connections, latency from due time."""
    body = b'{"site_id": "load", "event_type": "pageview", "path": "/"}'
    request = _request("/event", body, {"Content-Type": "application/json"})
    due: asyncio.Queue[float | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (due_at := await due.get()) is not None:
            try:
                writer.write(request)
                status = await _answer(reader)
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                tally.dropped += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            tally.add(status, time.perf_counter() - due_at)
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(16)]
    start = time.perf_counter()
    for n in range(int(EVENT_RATE * seconds)):
        due_at = start + n / EVENT_RATE
        if (delay := due_at - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        due.put_nowait(due_at)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)


async def _attacker(port: int, form: bytes, cookie: str, n: int, stop: float, tally: Tally) -> None:
    """Wrong sign-ins back to back on one keep-alive connection until ``stop``."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": cookie,
        "X-Forwarded-For": f"198.51.{n // 250}.{n % 250 + 1}",
    }
    request = _request("/login", form, headers)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < stop:
        try:
            writer.write(request)
            tally.add(await _answer(reader))
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            tally.dropped += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webapp.cli", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


async def test_event_latency_under_300_concurrent_wrong_sign_ins(
    tmp_path: Path, redis_available: str, queue_name: str
) -> None:
    port = free_port()
    env = process_env(
        {
            "REDIS_URL": redis_available,
            "REDIS_QUEUE_NAME": queue_name,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "FLASK_HOST": "127.0.0.1",
            "FLASK_PORT": str(port),
            "PUBLIC_STATS": "false",
            "ANALYTICS_DATA_DIR": str(tmp_path / "data"),
        }
    )
    _cli(env, "init-db")
    _cli(env, "users", "add", "owner@example.com", "--password-stdin", stdin="x" * 12 + "\n")
    web = Proc(["web"], env, tmp_path / "web.log").start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")
        async with httpx.AsyncClient() as http:  # one CSRF token and cookie for all attackers
            page = await http.get(base + "/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token, page.text
            cookie = "analytics_csrf=" + http.cookies["analytics_csrf"]

        def form(n: int) -> bytes:
            fields = {"email": f"u{n}@example.com", "password": "wrong password", "next": "/"}
            return urllib.parse.urlencode({**fields, "csrf_token": token.group(1)}).encode()

        await _events(port, 2.0, Tally())  # warm-up: connections, the enqueue script
        idle, attacked, sign_ins = Tally(), Tally(), Tally()
        for _ in range(ROUNDS):  # alternated, so that a noisy minute hits both alike
            await _events(port, SECONDS, idle)
            stop = time.perf_counter() + SECONDS + 1.0
            tasks = [
                asyncio.create_task(_attacker(port, form(n), cookie, n, stop, sign_ins))
                for n in range(ATTACKERS)
            ]
            await asyncio.sleep(0.5)  # every attacker connected and sending
            await _events(port, SECONDS, attacked)
            await asyncio.gather(*tasks)
    finally:
        web.stop()

    def figures(tally: Tally) -> str:
        return " ".join(f"p{q} {tally.p(q):.1f} ms" for q in (50, 90, 99))

    print(
        f"\nPOST /event at {EVENT_RATE}/s, {ROUNDS} x {SECONDS:.0f} s each: idle {figures(idle)};"
        f" under {ATTACKERS} concurrent wrong sign-ins {figures(attacked)}"
        f" (p99 ratio {attacked.p(99) / idle.p(99):.2f}, budget 2);"
        f" sign-in answers {dict(sorted(sign_ins.statuses.items()))}"
    )
    assert idle.dropped == attacked.dropped == sign_ins.dropped == 0
    assert idle.statuses == {202: len(idle.latencies)}
    assert attacked.statuses == {202: len(attacked.latencies)}
    assert set(sign_ins.statuses) <= {401, 429, 503}, sign_ins.statuses
    assert attacked.p(90) <= P90_RATIO_BOUND * idle.p(90)
    assert "Traceback" not in web.output()
