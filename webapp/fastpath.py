"""``POST /event`` answered by the ASGI bridge itself, without Flask.

Ingestion is most of the traffic and its answer is fixed in shape, so building a WSGI
environ, entering the greenback portal, pushing Flask's contexts and running the
before/after-request hooks for it is pure overhead (about half of a request's CPU).
This module answers it with the same code the Flask view runs
(:func:`webapp.ingest.accept_event`) and the same headers the app's hooks would add
(CORS for ingestion, ``nosniff``, the referrer policy), and the same error JSON and
``Retry-After`` for every refusal; ``tests/webapp/test_fastpath.py`` checks that both
paths answer alike. Every other request goes through Flask.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
from flask import Flask
from redis.exceptions import RedisError

from webapp import cors
from webapp.auth.headers import EVERY_ANSWER
from webapp.auth.headers import EXTENSION as FORWARDED_EXTENSION
from webapp.enrich import ForwardedAllow, client_address
from webapp.errors import HTTPError, error_body, redis_outage
from webapp.ingest import ACCEPTED, DROPPED_HEADER, accept_event
from webapp.resources import EXTENSION as RESOURCES_EXTENSION
from webapp.resources import Resources

Headers = list[tuple[bytes, bytes]]
log = logging.getLogger("webapp")


def _encode(headers: Mapping[str, str]) -> Headers:
    return [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers.items()]


# What the app adds to every ingestion answer: its CORS headers and the security headers
# of webapp.auth.headers.secure (a JSON answer gets no page headers).
_COMMON: Headers = _encode({"Content-Type": "application/json", **cors.INGESTION, **EVERY_ANSWER})
_DROPPED: Headers = _encode({DROPPED_HEADER: "1"})


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """A request header, several of the same name joined with commas (as Werkzeug does)."""
    found = [value for key, value in scope["headers"] if key == name]
    if not found:
        return None
    return b", ".join(found).decode("latin1")


def _mimetype(scope: Mapping[str, Any]) -> str:
    raw = _header(scope, b"content-type") or ""
    return raw.partition(";")[0].strip().lower()


class EventFastPath:
    """The bridge's handler for ``POST /event``: (status, headers, body) of the answer."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @staticmethod
    def handles(scope: MutableMapping[str, Any]) -> bool:
        return scope.get("method") == "POST" and scope.get("path") == "/event"

    async def answer(
        self, scope: MutableMapping[str, Any], body: bytes
    ) -> tuple[int, Headers, bytes]:
        extensions = self.app.extensions
        res: Resources = extensions[RESOURCES_EXTENSION]
        allow: ForwardedAllow = extensions[FORWARDED_EXTENSION]
        client = scope.get("client")
        peer = client[0] if client else None
        address = client_address(peer, _header(scope, b"x-forwarded-for"), allow)
        user_agent = _header(scope, b"user-agent") or ""
        try:
            queued = await accept_event(res, body, _mimetype(scope), address, user_agent)
        except HTTPError as exc:
            return self._error(exc)
        except RedisError as exc:
            return self._error(redis_outage(exc))
        except Exception:
            # As the app's handler for a bug: the traceback logged, the client told nothing.
            log.exception("unhandled error")
            return self._error(HTTPError(500, "internal error"))
        payload = orjson.dumps(ACCEPTED)
        headers = [*_COMMON, (b"content-length", str(len(payload)).encode())]
        return 202, headers if queued else headers + _DROPPED, payload

    @staticmethod
    def _error(exc: HTTPError) -> tuple[int, Headers, bytes]:
        payload = error_body(exc.message)
        headers = [*_COMMON, (b"content-length", str(len(payload)).encode())]
        return exc.status, headers + _encode(exc.headers), payload
