"""Tools for the fault tests: a TCP proxy the test can cut, a load generator, counters.

Everything here talks to the real services; the proxy only forwards bytes (or
refuses to), so what the worker or the web process sees is a real network outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pymysql
import redis as redis_sync
from sqlalchemy.engine import make_url

from db.settings import Settings

FIXED_DAY = "2024-05-01"


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 running its own event loop in a thread.

    ``cut()`` closes the listening socket (new connections are refused) and aborts
    every open connection on both sides; ``restore()`` listens again on the same
    port. ``accepted`` counts the connections made through it.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._listen())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._conns.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._conns.difference_update((writer, up_writer))

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._conns):
            writer.transport.abort()
        self._conns.clear()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def proxied_url(url: str, proxy: TcpProxy) -> str:
    """The same URL (database or Redis) with host and port replaced by the proxy's."""
    if url.startswith("redis://"):
        rest = url.split("://", 1)[1].split("/", 1)
        db = rest[1] if len(rest) > 1 else "0"
        return f"redis://127.0.0.1:{proxy.port}/{db}"
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)


# ---------------------------------------------------------------- load


def make_events(n: int, sites: int = 4, prefix: str = "fault") -> list[dict[str, Any]]:
    """``n`` distinct events on a fixed day, spread over ``sites`` sites."""
    return [
        {
            "site_id": f"{prefix}-site-{i % sites}",
            "event_type": "pageview",
            "path": f"/page/{i % 37}",
            "user_id": f"user-{i % 101}",
            "timestamp": f"{FIXED_DAY}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        }
        for i in range(n)
    ]


@dataclass
class LoadResult:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    accepted_by_site: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.statuses[202]


class LoadGenerator:
    """POSTs events to /event from a thread, ``concurrency`` keep-alive connections at once.

    A minimal HTTP/1.1 client on asyncio streams: httpx spends ~8 ms of CPU per
    request, which on two shared cores caps a test at ~100 events/s; this sends
    the same requests at the web process's own pace. Every request gets an answer
    or counts as an error (a connection that breaks is reopened).
    """

    def __init__(self, base_url: str, events: list[dict[str, Any]], concurrency: int = 32) -> None:
        host, port = base_url.split("://", 1)[1].rsplit(":", 1)
        self.address = (host, int(port))
        self.events = events
        self.concurrency = concurrency
        self.result = LoadResult()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def progress(self) -> int:
        return self.result.sent

    def join(self, timeout: float = 300) -> LoadResult:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "load generator did not finish"
        return self.result

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self.done.set()

    async def _post(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
    ) -> int:
        writer.write(
            b"POST /event HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (self.address[0].encode(), len(body), body)
        )
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before the answer")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return int(status_line.split()[1])

    async def _main(self) -> None:
        started = time.monotonic()
        pending = list(reversed(self.events))

        async def worker() -> None:
            conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
            while pending:
                event = pending.pop()
                self.result.sent += 1
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(asyncio.open_connection(*self.address), 30)
                    status = await asyncio.wait_for(self._post(*conn, orjson.dumps(event)), 60)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                    self.result.errors.append(repr(exc))
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    continue
                self.result.statuses[status] += 1
                if status == 202:
                    self.result.accepted_by_site[event["site_id"]] += 1
            if conn is not None:
                conn[1].close()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        self.result.seconds = time.monotonic() - started


# ---------------------------------------------------------------- reading the results


def mariadb_connect(database_url: str) -> pymysql.connections.Connection:
    url = make_url(database_url)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        charset="utf8mb4",
        autocommit=True,
    )


def sql_rows(settings: Settings, query: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a read query straight on the database (MariaDB or SQLite), bypassing the app."""
    url = settings.database_url
    if url.get_backend_name() == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(str(url.database))) as conn:
            return list(conn.execute(query.replace("%s", "?"), tuple(args)).fetchall())
    conn = mariadb_connect(url.set(drivername="mysql+pymysql").render_as_string(False))
    try:
        with conn.cursor() as cur:
            cur.execute(query, tuple(args))
            return list(cur.fetchall())
    finally:
        conn.close()


def stored_count(settings: Settings) -> int:
    return int(sql_rows(settings, "SELECT COUNT(*) FROM events")[0][0])


def redis_for(settings: Settings) -> redis_sync.Redis:
    return redis_sync.Redis.from_url(settings.redis_url)


def keys_matching(r: redis_sync.Redis, pattern: str) -> list[bytes]:
    """Every key matching ``pattern``, once: SCAN may return a key twice when Redis resizes
    its table meanwhile, which parallel tests making and deleting keys make likely."""
    return sorted(set(r.scan_iter(match=pattern)))


def pending_in_redis(settings: Settings) -> int:
    """Events still in the queue or in any in-flight list (markers excluded), read in one
    transaction, so a batch a consumer claims meanwhile is not counted in both."""
    r = redis_for(settings)
    try:
        tag = "{" + settings.queue_name + "}"
        pipe = r.pipeline(transaction=True)
        pipe.llen(settings.queue_name)
        for key in keys_matching(r, tag + ":inflight:*"):
            pipe.lrange(key, 0, -1)
        queued, *lists = pipe.execute()
        return int(queued) + sum(
            1 for items in lists for item in items if not item.startswith(b"#batch:")
        )
    finally:
        r.close()


def inflight_keys(settings: Settings) -> list[bytes]:
    r = redis_for(settings)
    try:
        return keys_matching(r, "{" + settings.queue_name + "}:inflight:*")
    finally:
        r.close()


def stats_total(base_url: str, sites: Iterable[str], day: str = FIXED_DAY) -> int:
    """The sum of /stats total_views over ``sites`` for ``day``."""
    total = 0
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for site in sites:
            response = http.get("/stats", params={"site_id": site, "date": day})
            assert response.status_code == 200, response.text
            total += int(response.json()["total_views"])
    return total
