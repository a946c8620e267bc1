"""The worker's Prometheus metrics, served on ``METRICS_PORT`` when it is set.

The counters live in a registry of their own (not prometheus_client's global one),
so a web process that imports the worker's code never shows them as zeros. The
queue's figures are read from Redis on the worker's loop when scraped
(asyncworker.figures); the HTTP server runs in a thread, as prometheus_client's
own does, and applies the same access rule as the web edge's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from asyncworker.figures import READ_TIMEOUT_S, FiguresCollector, MetricsAccess, read_figures
from asyncworker.queue import Queue
from db.settings import Settings

REGISTRY = CollectorRegistry()

STORED = Counter("analytics_events_stored", "Events committed to the database", registry=REGISTRY)
DEAD_LETTERED = Counter(
    "analytics_events_dead_lettered", "Messages moved to the dead letters", registry=REGISTRY
)
BATCH_EVENTS = Histogram(
    "analytics_batch_events",
    "Messages per batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "analytics_batch_seconds",
    "Time to store and acknowledge one batch (from its last event taken)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    """No access line on stderr per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


def guarded(app: Wsgi, access: MetricsAccess) -> Wsgi:
    """``app`` for the clients ``access`` allows; a 403 JSON error for the others."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if access.allows(environ.get("REMOTE_ADDR"), environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        body = b'{"error": "forbidden: not an allowed metrics client"}'
        start_response("403 Forbidden", [("Content-Type", "application/json")])
        return [body]

    return wsgi


def _reader(queue: Queue, loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """The queue's figures, read on the worker's loop from the server's thread."""

    def read() -> Any:
        future = asyncio.run_coroutine_threadsafe(read_figures(queue), loop)
        try:
            return future.result(READ_TIMEOUT_S + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return None

    return read


def start_metrics_server(
    settings: Settings, queue: Queue, loop: asyncio.AbstractEventLoop
) -> WSGIServer:
    """Serve the worker's metrics on ``FLASK_HOST:METRICS_PORT`` in a daemon thread.

    Raises OSError if the port is taken; stop it with ``shutdown()``.
    """
    registry = CollectorRegistry()
    registry.register(_Both(REGISTRY, FiguresCollector(_reader(queue, loop))))
    app = guarded(make_wsgi_app(registry), MetricsAccess.from_settings(settings))
    server = make_server(
        settings.flask_host, settings.metrics_port, app, ThreadingWSGIServer, _Quiet
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


class _Both:
    """The counters' registry and the scrape-time figures, as one collector."""

    def __init__(self, registry: CollectorRegistry, figures: FiguresCollector) -> None:
        self.registry = registry
        self.figures = figures

    def collect(self) -> Iterable[Any]:
        yield from self.registry.collect()
        yield from self.figures.collect()
