"""A database that accepts connections but never answers must not hang anyone."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from db.settings import Settings
from webapp import create_app
from webapp.asgi import make_asgi


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A TCP port that accepts connections and then says nothing, forever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


async def test_stats_answer_503_when_the_database_never_answers(
    settings_factory: Callable[..., Settings], blackhole: int
) -> None:
    settings = settings_factory(f"mysql+pymysql://root@127.0.0.1:{blackhole}/x")
    asgi = make_asgi(create_app({"SETTINGS": settings}))
    await asgi.on_startup()  # type: ignore[misc]
    try:
        transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            started = time.monotonic()
            response = await asyncio.wait_for(http.get("/stats", params={"site_id": "s"}), 30)
            elapsed = time.monotonic() - started
            assert response.status_code == 503
            assert response.json()["error"].endswith("retry later")
            assert "retry-after" in response.headers
            assert elapsed < 20
            ready = await asyncio.wait_for(http.get("/readyz"), 30)
            assert ready.status_code == 503
            assert ready.json()["database"] is False
            assert ready.json()["redis"] is True
    finally:
        await asgi.on_shutdown()  # type: ignore[misc]
