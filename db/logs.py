"""Logging for every command: one setup shared by ``analytics`` and ``python -m asyncworker``.

It lives below both packages so the worker's own entry point can use it without
importing the web app. ``LOG_FORMAT=json`` gives one JSON object per line (for log
shippers that would otherwise have to parse our text and split tracebacks); the
Hypercorn worker processes that ``analytics web`` spawns call it too (webapp.serve).
"""

from __future__ import annotations

import logging
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The fields of every JSON line; an exception adds "exc_info" with its traceback.
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        # python-json-logger: maintained, handles exceptions and extra fields.
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(JSON_FIELDS, rename_fields=JSON_RENAMES)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: str = "text") -> None:
    """Lines on stderr (text, or JSON objects with ``log_format="json"``); alembic's
    per-plugin chatter kept out. Like ``basicConfig``, it leaves a logging set-up that
    already exists (a test runner's) alone."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(log_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
