"""The API's OpenAPI 3 document, served at ``GET /openapi.json``.

``openapi.json`` next to this module is the source of truth (the schemathesis
tests check the running app against it). It is read once, at import: views run
on the serving event loop and must not do file I/O per request.
"""

from __future__ import annotations

from importlib.resources import files

import orjson
from flask import Blueprint, Response

from webapp import cors

bp = Blueprint("openapi", __name__)

DOCUMENT: bytes = files("webapp").joinpath("openapi.json").read_bytes()
# Fail at import, not on the first request, if the file is not valid JSON.
orjson.loads(DOCUMENT)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    response = Response(DOCUMENT, status=200, mimetype="application/json")
    # Tools such as Swagger UI hosted elsewhere may fetch it.
    return cors.allow(response, cors.ANY_ORIGIN)
