"""The JSON API: stats, sites, live figures, health (ingestion is :mod:`webapp.ingest`).

Views are ``async`` and await the process-wide Redis pool and engine (see
:mod:`webapp.bridge`); they must never block the loop. Views refuse a request by
raising :class:`~webapp.errors.HTTPError`; :mod:`webapp.errors` turns it, and Redis
or the database being away (503 with ``Retry-After``, never a 500 page), into
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Response, request
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db import sitelist, stats
from db.limits import EVENT_TYPE_MAX, SITE_ID_MAX
from db.stats import Period
from webapp.auth import access
from webapp.errors import OUTAGE_RETRY_AFTER_S, HTTPError
from webapp.resources import resources

log = logging.getLogger("webapp")
bp = Blueprint("api", __name__)

MAX_RANGE_DAYS = 366
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
LIVE_WINDOW_MIN = 5
STATS_TIMEOUT_S = 15.0
# /sites: rows per page (at most, and by default); 100 rows of 255-character names are
# well under 200 KB whatever the names hold.
SITES_PAGE = 100
MAX_OFFSET = 10_000_000
READY_TIMEOUT_S = 3.0
T = TypeVar("T")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


# ---------------------------------------------------------------- stats


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INT = re.compile(r"[+-]?[0-9]{1,9}")


# No event is before 1970 (the ingestion rule); the day after the last one must exist.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date.max - timedelta(days=1)


def _day(name: str, raw: str) -> date:
    # Exactly YYYY-MM-DD: date.fromisoformat alone (3.11+) also takes "2024-W03-1".
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise HTTPError(400, f"{name} must be a date as YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise HTTPError(400, f"{name} must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def site_id_arg() -> str:
    site_id = request.args.get("site_id", "")
    if not site_id:
        raise HTTPError(400, "site_id required")
    if len(site_id) > SITE_ID_MAX:
        raise HTTPError(400, f"site_id must be at most {SITE_ID_MAX} characters")
    return site_id


def period_args() -> tuple[Period, dict[str, str]]:
    """``date`` (default today, UTC) or an inclusive ``from``/``to`` range."""
    args = request.args
    has_range = "from" in args or "to" in args
    if has_range:
        if "date" in args:
            raise HTTPError(400, "use either date or from/to, not both")
        if not args.get("from") or not args.get("to"):
            raise HTTPError(400, "from and to are both required for a range")
        start, end = _day("from", args["from"]), _day("to", args["to"])
        if end < start:
            raise HTTPError(400, "from must not be after to")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise HTTPError(400, f"a range covers at most {MAX_RANGE_DAYS} days")
        return Period(start, end), {"from": start.isoformat(), "to": end.isoformat()}
    raw = args.get("date")
    day = _day("date", raw) if raw else datetime.now(timezone.utc).date()
    return Period(day, day), {"date": day.isoformat()}


def _event_type() -> str | None:
    value = request.args.get("event_type")
    if value is None or value == "":
        return None
    if len(value) > EVENT_TYPE_MAX:
        raise HTTPError(400, f"event_type must be at most {EVENT_TYPE_MAX} characters")
    return value


def limit_arg(default: int, most: int) -> int:
    """The ``limit`` parameter: 1..``most``, ``default`` when absent."""
    raw = request.args.get("limit")
    if raw is None:
        return default
    # Plain ASCII digits only: int() alone also takes "1_0" and non-ASCII digits.
    value = int(raw) if _INT.fullmatch(raw) else 0
    if not 1 <= value <= most:
        raise HTTPError(400, f"limit must be an integer between 1 and {most}")
    return value


def _limit() -> int:
    return limit_arg(DEFAULT_LIMIT, MAX_LIMIT)


async def read_stats(query: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run a stats query in its own session, bounded: a database that stops answering
    gets a 503 with Retry-After instead of a request that hangs."""

    async def run() -> T:
        async with resources().sessions() as session:
            return await query(session)

    try:
        return await asyncio.wait_for(run(), STATS_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise HTTPError.retry_later(
            503, "stats query timed out, retry later", OUTAGE_RETRY_AFTER_S
        ) from None


@bp.get("/stats")
async def get_stats() -> Response:
    site_id = site_id_arg()
    period, label = period_args()
    event_type, limit = _event_type(), _limit()
    figures = await read_stats(lambda s: stats.summary(s, site_id, period, event_type, limit))
    body: dict[str, Any] = {"site_id": site_id, **label, **figures}
    if "from" in label:
        body["unique_users_exact"] = True
    return json_response(body)


def period_body(site_id: str, period: Period, **more: Any) -> Response:
    """The JSON answer of a report over a period: the site, ``from``/``to``, then ``more``."""
    body = {"site_id": site_id, "from": period.start.isoformat(), "to": period.end.isoformat()}
    return json_response(body | more)


@bp.get("/stats/event-types")
async def get_event_types() -> Response:
    site_id = site_id_arg()
    period, _ = period_args()
    found = await read_stats(lambda s: stats.event_types(s, site_id, period))
    return period_body(site_id, period, event_types=found)


@bp.get("/stats/timeseries")
async def get_timeseries() -> Response:
    site_id = site_id_arg()
    period, _ = period_args()
    interval = request.args.get("interval", "hour" if period.days == 1 else "day")
    if interval not in ("hour", "day"):
        raise HTTPError(400, "interval must be hour or day")
    if interval == "hour" and period.days > 31:
        raise HTTPError(400, "hourly series cover at most 31 days")
    event_type = _event_type()
    series = await read_stats(lambda s: stats.timeseries(s, site_id, period, interval, event_type))
    return json_response(series)


def search_arg() -> str:
    """``q``: a part of a site's name (case-insensitive), '' for every site."""
    query = request.args.get("q", "")
    if len(query) > SITE_ID_MAX:
        raise HTTPError(400, f"q must be at most {SITE_ID_MAX} characters")
    return query


@bp.get("/sites")
async def get_sites() -> Response:
    """A page of the sites this request may read (webapp.auth.access), busiest first;
    ``Link: <...>; rel="next"`` when more follow (as GitHub's API pages)."""
    query, limit = search_arg(), limit_arg(SITES_PAGE, SITES_PAGE)
    raw = request.args.get("offset", "0")
    offset = int(raw) if _INT.fullmatch(raw) else -1
    if not 0 <= offset <= MAX_OFFSET:
        raise HTTPError(400, f"offset must be an integer between 0 and {MAX_OFFSET}")
    readable, registered_too = access.listing_scope()
    page = await read_stats(
        lambda s: sitelist.with_events(
            s,
            readable=readable,
            registered_too=registered_too,
            query=query,
            offset=offset,
            limit=limit,
        )
    )
    response = json_response({"sites": page.rows})
    if page.more:
        args: dict[str, str | int] = {"limit": limit, "offset": offset + limit}
        if query:
            args["q"] = query
        following = request.path + "?" + urlencode(args)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


# ---------------------------------------------------------------- health


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and serving (no dependency is checked)."""
    return json_response({"status": "ok"})


async def _worker_state() -> dict[str, Any]:
    return await resources().queue.read_heartbeats()


@bp.get("/readyz")
async def readyz() -> Response:
    """Redis and the database reachable; queue length and worker heartbeat age for operators."""
    res = resources()
    body: dict[str, Any] = {"status": "ok", "redis": False, "database": False}
    body.update(queue_length=None, dead_letters=None, workers=0, worker_heartbeat_age_s=None)
    try:
        body["queue_length"], body["dead_letters"] = await res.queue.totals()
        state = await _worker_state()
        body["workers"] = state["workers"]
        body["worker_heartbeat_age_s"] = state["oldest_heartbeat_age_s"]
        body["redis"] = True
    except (RedisError, OSError):
        pass
    try:

        async def ping() -> None:
            async with res.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.wait_for(ping(), READY_TIMEOUT_S)
        body["database"] = True
    except (SQLAlchemyError, OSError, asyncio.TimeoutError):
        pass
    ready = body["redis"] and body["database"]
    body["status"] = "ok" if ready else "unavailable"
    return json_response(body, 200 if ready else 503)


@bp.get("/live")
async def live() -> Response:
    """Events accepted in the last five minutes, queue length and worker state."""
    site_id = request.args.get("site_id") or None
    received, queue_length = await resources().queue.live_counts(LIVE_WINDOW_MIN, site_id)
    state = await _worker_state()
    return json_response(
        {
            "site_id": site_id,
            "received_last_5_min": received,
            "queue_length": queue_length,
            "worker": {
                "alive": state["alive"],
                "heartbeat_age_s": state["oldest_heartbeat_age_s"],
                "workers": state["workers"],
            },
        }
    )
