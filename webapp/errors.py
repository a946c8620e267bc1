"""One error path for the web: one exception type, one JSON body, one set of handlers.

Every error the service answers is ``{"error": "..."}`` with a 4xx/5xx status,
whether Flask routing refused the request (404, 405 with ``Allow``), a view raised
:class:`HTTPError`, Redis or the database is away (503 with ``Retry-After``, never a
500 page), something unexpected broke (500, traceback logged), or the ASGI bridge
refused the request before Flask saw it (413, 408, 400). Keeping the body, the type
and the handlers here means a client sees one shape and one set of headers however
the request failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import orjson
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from db.errors import describe

log = logging.getLogger("webapp")

JSON = "application/json"
# Seconds a client is asked to wait while Redis or the database is away.
OUTAGE_RETRY_AFTER_S = 5
# One warning per service this often during an outage, not one per failed request.
OUTAGE_LOG_EVERY_S = 10.0


class HTTPError(Exception):
    """An answer other than success: its status, the client-facing message, extra headers.

    Raised by views (Flask's handler turns it into JSON) and by the ASGI bridge for
    what it refuses before Flask runs (it sends the same JSON itself).
    """

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers: Mapping[str, str] = dict(headers or {})

    @classmethod
    def retry_later(cls, status: int, message: str, after_s: int) -> HTTPError:
        """An error the client should retry, telling it when (``Retry-After``)."""
        return cls(status, message, {"Retry-After": str(after_s)})


def error_body(message: str) -> bytes:
    """The one serialized form of an error, for Flask's answers and the bridge's alike."""
    return orjson.dumps({"error": message})


def error_response(error: HTTPError) -> Response:
    """``error`` as a Flask/Werkzeug response."""
    return Response(error_body(error.message), error.status, error.headers, mimetype=JSON)


_last_outage_log: dict[str, float] = {}


def _log_outage(what: str, exc: Exception) -> None:
    """One warning per service every :data:`OUTAGE_LOG_EVERY_S`, not one per failed request."""
    now = time.monotonic()
    if now - _last_outage_log.get(what, -1e9) >= OUTAGE_LOG_EVERY_S:
        _last_outage_log[what] = now
        log.warning("%s unavailable: %s", what, describe(exc))


def routing_error(exc: HTTPException) -> Response:
    """404, 405... from Flask/Werkzeug, as JSON; their own headers (``Allow``) are kept."""
    response = exc.get_response()
    response.set_data(error_body(exc.description or exc.name))
    response.mimetype = JSON
    return response


def redis_outage(exc: RedisError) -> HTTPError:
    """The answer while Redis is away (logged once per :data:`OUTAGE_LOG_EVERY_S`)."""
    _log_outage("Redis", exc)
    return HTTPError.retry_later(503, "queue unavailable, retry later", OUTAGE_RETRY_AFTER_S)


def redis_down(exc: RedisError) -> Response:
    return error_response(redis_outage(exc))


def database_down(exc: SQLAlchemyError) -> Response:
    _log_outage("database", exc)
    return error_response(
        HTTPError.retry_later(503, "database unavailable, retry later", OUTAGE_RETRY_AFTER_S)
    )


def unexpected(exc: Exception) -> Response:
    """A bug: the client learns nothing of it, the log gets the traceback."""
    log.exception("unhandled error", exc_info=exc)
    return error_response(HTTPError(500, "internal error"))


def register(app: Flask) -> None:
    """Make every error of ``app`` go through this module."""
    app.register_error_handler(HTTPException, routing_error)
    app.register_error_handler(HTTPError, error_response)
    app.register_error_handler(RedisError, redis_down)
    app.register_error_handler(SQLAlchemyError, database_down)
    app.register_error_handler(Exception, unexpected)
