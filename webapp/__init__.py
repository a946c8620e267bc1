"""The web edge: ingestion (POST /event), stats, health, and the dashboard.

``create_app`` is a Flask app factory in the style of the Flask tutorial: tests
pass ``test_config`` (including a ready :class:`~db.settings.Settings`) instead of
relying on the environment.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from db.settings import Settings, load_settings
from webapp.bridge import GreenFlask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = GreenFlask(__name__)
    app.config.from_mapping(JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    if not isinstance(app.config.get("SETTINGS"), Settings):
        app.config["SETTINGS"] = load_settings()
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from webapp import api, auth, dashboard, errors, ingest, metrics, openapi, visitors_api

    app.register_blueprint(ingest.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(visitors_api.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(dashboard.bp)
    # Access control: every route classified, forms CSRF-protected, security headers.
    auth.init_app(app, app.config["SETTINGS"])

    errors.register(app)
    return app
