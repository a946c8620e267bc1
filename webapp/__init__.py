"""The web edge: ingestion (POST /event), stats, health, and the dashboard.

``create_app`` is a Flask app factory in the style of the Flask tutorial: tests
pass ``test_config`` (including a ready :class:`~db.settings.Settings`) instead of
relying on the environment.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from db.settings import Settings, load_settings
from webapp.bridge import GreenFlask

log = logging.getLogger("webapp")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = GreenFlask(__name__)
    app.config.from_mapping(JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    if not isinstance(app.config.get("SETTINGS"), Settings):
        app.config["SETTINGS"] = load_settings()
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from webapp import api, dashboard, openapi

    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(dashboard.bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> BaseResponse:
        """Every error of the API is JSON, including 404 and 405 from routing.

        The exception's own headers are kept (a 405 must carry ``Allow``).
        """
        response = exc.get_response()
        response.set_data(json.dumps({"error": exc.description or exc.name}))
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[dict[str, str], int]:
        log.exception("unhandled error")
        return {"error": "internal error"}, 500

    @app.after_request
    def no_sniff(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
