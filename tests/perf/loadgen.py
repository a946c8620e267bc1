"""An open-loop HTTP load generator: requests at a fixed rate, latency from when each was due.

wrk measures the most a server answers with a fixed number of connections (closed loop);
tail latency at a given load needs requests sent on schedule whatever the server does, and
each latency counted from the moment its request was due, so a stall shows as the time
every request waited behind it (no coordinated omission). Raw HTTP/1.1 over keep-alive
connections on asyncio keeps the client's own cost low.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.latencies),
            "p50_ms": self.percentile(50) * 1000,
            "p99_ms": self.percentile(99) * 1000,
            "max_ms": max(self.latencies, default=float("nan")) * 1000,
            "mean_ms": statistics.fmean(self.latencies) * 1000 if self.latencies else 0.0,
            "over_1s": sum(1 for x in self.latencies if x > 1.0),
        }


def request_bytes(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(
    port: int,
    make_request: Callable[[int], bytes],
    rate: float,
    seconds: float,
    connections: int = 64,
    on_answer: Callable[[int, int, float], None] | None = None,
) -> Outcome:
    """Send ``rate`` requests a second for ``seconds``; ``make_request(n)`` builds the n-th.

    ``on_answer(n, status, answered_at)`` is called for each answer (the freshness probes
    use it)."""
    outcome = Outcome()
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await due.get()) is not None:
                n, due_at = item
                request = make_request(n)
                try:
                    writer.write(request)
                    status = await _read_response(reader)
                except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
                    # The server closed the connection before reading this request
                    # (Hypercorn ends a keep-alive connection after 1,000 requests):
                    # send it again on a new one, as an HTTP client does.
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(request)
                    status = await _read_response(reader)
                now = time.perf_counter()
                outcome.latencies.append(now - due_at)
                outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
                if on_answer is not None:
                    on_answer(n, status, now)
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        due_at = start + n / rate
        delay = due_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((n, due_at))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return outcome
