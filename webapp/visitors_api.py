"""The visitor reports: ``/stats/aggregate`` and ``/stats/breakdown``.

Same parameters, rules and errors as ``/stats`` (``site_id``, ``date`` or
``from``/``to``); every figure is read from the visit aggregates the worker keeps
(:mod:`db.visit_stats`), never from a scan of ``events``.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from db import visit_stats
from webapp.api import limit_arg, period_args, period_body, read_stats, site_id_arg
from webapp.errors import HTTPError

bp = Blueprint("visitors", __name__)

BREAKDOWN_DEFAULT_LIMIT = 10
BREAKDOWN_MAX_LIMIT = 1000
_PROPERTY_ERROR = "property must be one of " + ", ".join(visit_stats.PROPERTIES) + " or props:<key>"


@bp.get("/stats/aggregate")
async def get_aggregate() -> Response:
    site_id = site_id_arg()
    period, _ = period_args()
    figures = await read_stats(lambda s: visit_stats.aggregate(s, site_id, period))
    return period_body(site_id, period, **figures)


@bp.get("/stats/breakdown")
async def get_breakdown() -> Response:
    site_id = site_id_arg()
    prop = request.args.get("property", "")
    if not visit_stats.valid_property(prop):
        raise HTTPError(400, _PROPERTY_ERROR)
    period, _ = period_args()
    limit = limit_arg(BREAKDOWN_DEFAULT_LIMIT, BREAKDOWN_MAX_LIMIT)
    results = await read_stats(lambda s: visit_stats.breakdown(s, site_id, period, prop, limit))
    return period_body(site_id, period, property=prop, results=results)
