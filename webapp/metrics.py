"""The web edge's Prometheus metrics and ``GET /metrics``.

Counting on ``POST /event`` is one ``inc``/``observe`` per request: no I/O and no
await on the hot path. Under ``analytics web --workers N`` each Hypercorn worker
writes its values to the private directory the supervisor made
(``PROMETHEUS_MULTIPROC_DIR``, see webapp.serve) and a scrape, answered by any worker,
sums every worker's files (prometheus_client's multiprocess mode). The queue's figures
come from Redis at scrape time, bounded (asyncworker.figures).

Who may scrape: a client address in ``METRICS_ALLOW_IPS`` (the real client behind the
proxies of ``FORWARDED_ALLOW_IPS``, as for throttling) or ``Authorization: Bearer
$METRICS_TOKEN``; anyone else gets ``403 {"error": ...}``.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from asyncworker.figures import FiguresCollector, MetricsAccess, read_figures
from db.settings import Settings
from webapp.errors import HTTPError
from webapp.resources import resources

bp = Blueprint("metrics", __name__)

# Our own registry: prometheus_client's global one would also carry whatever else a
# process (a test runner) registered there.
REGISTRY = CollectorRegistry()

ACCEPTED = Counter(
    "analytics_events_accepted", "Events queued (answered 202, not duplicates)", registry=REGISTRY
)
DUPLICATES = Counter(
    "analytics_events_duplicate",
    "Events answered 202 without queueing: their event_id was accepted within 24 hours",
    registry=REGISTRY,
)
REJECTED = Counter(
    "analytics_events_rejected",
    "Events refused, by reason: invalid (400/408/415), too_large (413), queue_full (503), "
    "unavailable (503: Redis away, or replicas short of REDIS_WAIT_REPLICAS), "
    "unregistered_site (202 and dropped: REGISTERED_SITES_ONLY)",
    ["reason"],
    registry=REGISTRY,
)
REASONS = ("invalid", "too_large", "queue_full", "unavailable", "unregistered_site")
for _reason in REASONS:
    REJECTED.labels(_reason)  # every reason present from the start, at 0
ENQUEUE_SECONDS = Histogram(
    "analytics_enqueue_seconds",
    "Time to queue one event in Redis (the enqueue script, and WAIT when configured)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def reject(reason: str, events: int = 1) -> None:
    """Count refused events (``reason`` is one of :data:`REASONS`)."""
    REJECTED.labels(reason).inc(events)


def check_access() -> None:
    """The guard's rule for ``/metrics``: raise a 403 unless the client may scrape."""
    from webapp.auth import headers  # the guard imports this module: no import cycle

    settings: Settings = current_app.config["SETTINGS"]
    access: MetricsAccess | None = current_app.extensions.get("metrics_access")
    if access is None:
        access = current_app.extensions["metrics_access"] = MetricsAccess.from_settings(settings)
    if not access.allows(headers.client(), request.headers.get("Authorization")):
        raise HTTPError(403, "forbidden: not an allowed metrics client")


def _counters() -> bytes:
    """This process's counters, or every web worker's summed in multiprocess mode."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return generate_latest(REGISTRY)
    summed = CollectorRegistry()
    # Registers itself in ``summed``; reads the workers' files when collected.
    MultiProcessCollector(summed, path)  # type: ignore[no-untyped-call]
    return generate_latest(summed)


@bp.get("/metrics")
async def metrics() -> Response:
    figures = await read_figures(resources().queue)
    queue_registry = CollectorRegistry()
    queue_registry.register(FiguresCollector(lambda: figures))
    body = _counters() + generate_latest(queue_registry)
    return Response(body, 200, content_type=CONTENT_TYPE_LATEST)
