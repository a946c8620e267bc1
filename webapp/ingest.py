"""Ingestion: ``POST /event`` (one event) and ``POST /events`` (a batch of up to 1,000).

Public, as in every analytics tool, and answered from any origin. Each event is
validated (:mod:`db.event`), enriched with what the request says of its visitor
(:mod:`webapp.enrich.arrival`: the address and User-Agent are inputs only, never
stored) and queued by :class:`~asyncworker.queue.Queue`, which sessionizes it in the
same script call. An event is answered ``202`` only once it is in Redis; with
``REDIS_WAIT_REPLICAS`` only once enough replicas have it too.

With ``REGISTERED_SITES_ONLY``, an event of a site nobody registered is answered ``202``
too, with :data:`DROPPED_HEADER` saying it was dropped (as Plausible answers with
``x-plausible-dropped: 1``), counted as ``unregistered_site`` and never queued: the
registered sites come from this process's copy (:mod:`db.registry`), no query per event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from flask import Blueprint, Response, request
from redis.exceptions import RedisError

from asyncworker.queue import EnqueueResult
from asyncworker.queue.edge import Queued
from db.event import Event, InvalidEvent, validate_event
from db.registry import NotLoaded
from webapp import cors, metrics
from webapp.api import json_response
from webapp.auth.headers import forwarded_allow
from webapp.bridge import INGESTION_PATHS
from webapp.enrich import client_address
from webapp.enrich.arrival import Salts, enrich
from webapp.errors import OUTAGE_RETRY_AFTER_S, HTTPError
from webapp.resources import Resources, resources

bp = Blueprint("ingest", __name__)

# A full queue drains at the worker's pace: ask senders to wait longer than for an outage.
QUEUE_FULL_RETRY_AFTER_S = 10
# A failover takes seconds; an event short of its replicas may be retried at once.
UNREPLICATED_RETRY_AFTER_S = 1
BATCH_MAX_EVENTS = 1000
NDJSON = "application/x-ndjson"
ACCEPTED = {"status": "accepted"}
# On a 202 whose events were dropped (REGISTERED_SITES_ONLY): how many.
DROPPED_HEADER = "X-Analytics-Dropped"
_OUTCOMES = {
    EnqueueResult.ACCEPTED: metrics.ACCEPTED,
    EnqueueResult.DUPLICATE: metrics.DUPLICATES,
    EnqueueResult.QUEUE_FULL: metrics.REJECTED.labels("queue_full"),
    EnqueueResult.UNREPLICATED: metrics.REJECTED.labels("unavailable"),
}


@bp.after_request
def cors_for_ingestion(response: Response) -> Response:
    if request.path in INGESTION_PATHS:
        cors.allow(response, cors.INGESTION)
    return response


@bp.route("/event", methods=["OPTIONS"])
@bp.route("/events", methods=["OPTIONS"])
def event_preflight() -> Response:
    return Response(status=204)


def _check_type(mimetype: str, *allowed: str) -> None:
    if mimetype not in allowed and not mimetype.endswith("+json"):
        raise HTTPError(415, "Content-Type must be " + " or ".join(m for m in allowed if m))


def parse_event(raw: bytes, mimetype: str) -> Event:
    """One event from a request body; raises :class:`HTTPError` (counted) when refused."""
    try:
        _check_type(mimetype, "application/json", "text/plain", "")
        if not raw.strip():
            raise HTTPError(400, "body must be a JSON object")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise HTTPError(400, "body is not valid JSON") from None
        try:
            return validate_event(data, datetime.now(timezone.utc))
        except InvalidEvent as exc:
            raise HTTPError(400, str(exc)) from None
    except HTTPError:
        metrics.reject("invalid")
        raise


def request_client() -> tuple[str | None, str]:
    """The Flask request's client address (behind trusted proxies) and User-Agent."""
    address = client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For"), forwarded_allow()
    )
    return address, request.headers.get("User-Agent", "")


def _refuse(outcome: EnqueueResult) -> None:
    """Answer 503 for an event that is not safely queued."""
    if outcome is EnqueueResult.QUEUE_FULL:
        raise HTTPError.retry_later(503, "queue is full, retry later", QUEUE_FULL_RETRY_AFTER_S)
    if outcome is EnqueueResult.UNREPLICATED:
        # Queued on the master, not yet on enough replicas: never a 202 (a retry with
        # the same event_id is deduplicated if this copy survives).
        raise HTTPError.retry_later(
            503, "event not yet replicated, retry later", UNREPLICATED_RETRY_AFTER_S
        )


def registered(res: Resources, events: Sequence[Event]) -> list[Event]:
    """The events to queue: all of them, or with REGISTERED_SITES_ONLY those of registered
    sites (the others counted as dropped)."""
    if res.registry is None:
        return list(events)
    try:
        kept = [e for e in events if res.registry.get(e.site_id) is not None]
    except NotLoaded:
        metrics.reject("unavailable", len(events))
        raise HTTPError.retry_later(
            503, "registered sites not loaded yet, retry later", OUTAGE_RETRY_AFTER_S
        ) from None
    if len(kept) < len(events):
        metrics.reject("unregistered_site", len(events) - len(kept))
    return kept


async def queue_events(
    res: Resources, events: Sequence[Event], address: str | None, user_agent: str
) -> list[EnqueueResult]:
    """Enrich and queue validated events, counting each outcome.

    ``address`` and ``user_agent`` are the request's: inputs of the enrichment only,
    never stored (see :mod:`webapp.enrich`)."""
    started = time.perf_counter()
    try:
        today, yesterday = await res.queue.salts(datetime.now(timezone.utc).date())
        salts = Salts(today, yesterday)
        items: list[Queued] = [enrich(e, address, user_agent, salts, res.geo) for e in events]
        if len(items) == 1:
            outcomes = [await res.queue.enqueue_event(*items[0])]
        else:
            outcomes = await res.queue.enqueue_many(items)
    except (RedisError, OSError):
        metrics.reject("unavailable", len(events))
        raise
    finally:
        metrics.ENQUEUE_SECONDS.observe(time.perf_counter() - started)
    for outcome in outcomes:
        _OUTCOMES[outcome].inc()
    return outcomes


async def accept_event(
    res: Resources, raw: bytes, mimetype: str, address: str | None, user_agent: str
) -> bool:
    """``POST /event`` itself: True once the event is queued, False when it was dropped
    (an unregistered site), else raise HTTPError (or RedisError). Shared by the Flask
    view and the bridge's fast path."""
    event = parse_event(raw, mimetype)
    if not registered(res, [event]):
        return False
    (outcome,) = await queue_events(res, [event], address, user_agent)
    _refuse(outcome)
    return True


@bp.post("/event")
async def post_event() -> Response:
    raw = request.get_data(cache=False)
    queued = await accept_event(resources(), raw, request.mimetype, *request_client())
    response = json_response(ACCEPTED, 202)
    if not queued:
        response.headers[DROPPED_HEADER] = "1"
    return response


def _batch_items() -> list[object]:
    """The items of a batch body: a JSON array, or one JSON document per NDJSON line
    (a line that is not JSON becomes an item that fails validation)."""
    raw = request.get_data(cache=False)
    _check_type(request.mimetype, "application/json", "text/plain", NDJSON, "")
    if request.mimetype == NDJSON:
        items: list[object] = []
        for line in raw.splitlines():
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    items.append(_NOT_JSON)
    else:
        try:
            document = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            raise HTTPError(400, "body is not valid JSON") from None
        if not isinstance(document, list):
            raise HTTPError(400, "body must be a JSON array of events, or NDJSON")
        items = document
    if len(items) > BATCH_MAX_EVENTS:
        raise HTTPError(400, f"a batch holds at most {BATCH_MAX_EVENTS} events")
    return items


_NOT_JSON = object()


@bp.post("/events")
async def post_events() -> Response:
    try:
        items = _batch_items()
    except HTTPError:
        metrics.reject("invalid")
        raise
    now = datetime.now(timezone.utc)
    valid: list[Event] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if item is _NOT_JSON:
                raise InvalidEvent("not valid JSON")
            valid.append(validate_event(item, now))
        except InvalidEvent as exc:
            rejected.append({"index": index, "error": str(exc)})
    if rejected:
        metrics.reject("invalid", len(rejected))
    res = resources()
    kept = registered(res, valid)
    outcomes = await queue_events(res, kept, *request_client()) if kept else []
    for outcome in (EnqueueResult.QUEUE_FULL, EnqueueResult.UNREPLICATED):
        if outcome in outcomes:
            _refuse(outcome)
    duplicates = outcomes.count(EnqueueResult.DUPLICATE)
    body = {"accepted": len(outcomes) - duplicates, "duplicates": duplicates, "rejected": rejected}
    response = json_response(body, 202)
    if len(kept) < len(valid):
        response.headers[DROPPED_HEADER] = str(len(valid) - len(kept))
    return response
