"""The cross-origin headers of the web app, declared once.

Three kinds of answer are read by pages on other origins: ingestion (``/event``,
posted to by every site that embeds the tracker), the tracker script and the
OpenAPI document (fetched by tools hosted elsewhere), and the bridge's own early
error answers (a refused ``POST /event`` must still be readable by the page that
sent it). Every other answer carries no CORS header at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from werkzeug.wrappers import Response

R = TypeVar("R", bound=Response)

# Readable from any origin: the tracker, the OpenAPI document, the bridge's early errors.
ANY_ORIGIN: Mapping[str, str] = {"Access-Control-Allow-Origin": "*"}

# Ingestion is public, like every analytics tool's: any site may post events, and a
# browser's preflight is answered for a day.
INGESTION: Mapping[str, str] = {
    **ANY_ORIGIN,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def allow(response: R, headers: Mapping[str, str]) -> R:
    """Set ``headers`` (one of the constants above) on ``response`` and return it."""
    response.headers.update(headers)
    return response
