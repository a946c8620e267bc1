"""The visitor reports: ``/stats/aggregate`` and ``/stats/breakdown``.

Same parameters, rules and errors as ``/stats`` (``site_id``, ``date`` or
``from``/``to``); every figure is read from the visit aggregates the worker keeps
(:mod:`db.visit_stats`), never from a scan of ``events``.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from db import visit_stats
from webapp.api import _limit_between, _period, _read, _site_id, json_response
from webapp.errors import HTTPError

bp = Blueprint("visitors", __name__)

BREAKDOWN_DEFAULT_LIMIT = 10
BREAKDOWN_MAX_LIMIT = 1000
_PROPERTY_ERROR = "property must be one of " + ", ".join(visit_stats.PROPERTIES) + " or props:<key>"


@bp.get("/stats/aggregate")
async def get_aggregate() -> Response:
    site_id = _site_id()
    period, _ = _period()
    figures = await _read(lambda s: visit_stats.aggregate(s, site_id, period))
    return json_response(
        {
            "site_id": site_id,
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            **figures,
        }
    )


@bp.get("/stats/breakdown")
async def get_breakdown() -> Response:
    site_id = _site_id()
    prop = request.args.get("property", "")
    if not visit_stats.valid_property(prop):
        raise HTTPError(400, _PROPERTY_ERROR)
    period, _ = _period()
    limit = _limit_between(BREAKDOWN_DEFAULT_LIMIT, BREAKDOWN_MAX_LIMIT)
    results = await _read(lambda s: visit_stats.breakdown(s, site_id, period, prop, limit))
    return json_response(
        {
            "site_id": site_id,
            "property": prop,
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "results": results,
        }
    )
