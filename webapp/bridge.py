"""Serving Flask on Hypercorn's own event loop (the measured fastest route, DESIGN.md).

Flask is a WSGI app; served as WSGI, every async view would get a new event loop
in a thread, and no Redis pool or engine could be shared. Instead this ASGI
callable reads the request body on the serving loop, opens a greenback portal in
the request's task and runs ``app.wsgi_app`` right there. :class:`GreenFlask`
turns each async view into ``greenback.await_(view())``, so views await the
process-wide Redis pool and SQLAlchemy engine created in the ASGI lifespan.

Consequence: sync code in a request runs on the loop and must never block on I/O.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Protocol

import greenback
from a2wsgi.wsgi import build_environ
from flask import Flask

from db.errors import describe
from webapp import cors, metrics
from webapp.errors import JSON, HTTPError, error_body

log = logging.getLogger("webapp")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
# POST /events carries up to 1,000 events (webapp/batch.py).
BATCH_BODY_BYTES = 1024 * 1024
INGESTION_PATHS = ("/event", "/events")


def too_large(limit: int) -> str:
    return f"body too large (at most {limit} bytes)"


class FastPath(Protocol):
    """A request answered without Flask (webapp/fastpath.py): same answer, less work."""

    def handles(self, scope: Scope) -> bool: ...

    async def answer(
        self, scope: Scope, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]: ...


class Gate(Protocol):
    """Requests that wait for their turn before Flask runs them (webapp/auth/gate.py)."""

    def handles(self, scope: Scope) -> bool: ...

    def turn(self) -> AbstractAsyncContextManager[None]: ...


class ClientGone(Exception):
    """The client disconnected before its body arrived: there is no one to answer."""


class GreenFlask(Flask):
    """Flask whose async views re-enter the serving loop through greenback."""

    def async_to_sync(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            return greenback.await_(func(*args, **kwargs))

        return run


class AsgiBridge:
    """ASGI entry point: lifespan hooks plus Flask's WSGI app run on the loop."""

    def __init__(
        self,
        app: Flask,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        body_timeout_s: float = 5.0,
        fast_path: FastPath | None = None,
        forwarded: Callable[[Scope], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.app = app
        self.fast_path = fast_path
        # Sets the scheme and host the browser used (webapp.proxy) before Flask sees them.
        self.forwarded = forwarded
        self.gate = gate
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failure = await self._start()
                if failure is not None:
                    # Hypercorn raises out of this send, which ends the worker process
                    # (exit 1): a server that could not open its connections must not
                    # serve. Sent outside the except block, so that its traceback is
                    # not chained to the one already logged.
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if self.on_shutdown is not None:
                        await self.on_shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> str | None:
        """Run ``on_startup``; on failure log the whole traceback and return the message.

        ``lifespan.startup.failed`` carries only a message: without the traceback in the
        log an operator would see "File exists" and not where it came from.
        """
        try:
            if self.on_startup is not None:
                await self.on_startup()
        except Exception as exc:
            log.exception("start-up failed, the server stops: %s", describe(exc))
            return str(exc)
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, refusing early what is over the limit or never arrives."""
        batch = scope.get("path") == "/events" and scope.get("method") == "POST"
        limit = BATCH_BODY_BYTES if batch else MAX_BODY_BYTES
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise HTTPError(400, "invalid Content-Length header") from None
                if declared > limit:
                    raise HTTPError(413, too_large(limit))
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            try:
                message = await _within(receive(), deadline)
            except asyncio.TimeoutError:
                raise HTTPError(408, "request body not received in time") from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, too_large(limit))
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self._read_body(scope, receive)
        except HTTPError as exc:
            if scope.get("path") in INGESTION_PATHS and scope.get("method") == "POST":
                metrics.reject("too_large" if exc.status == 413 else "invalid")
            await _send_error(send, exc)
            return
        except ClientGone:
            return
        if self.fast_path is not None and self.fast_path.handles(scope):
            status, headers, payload = await self.fast_path.answer(scope, body)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        if self.forwarded is not None:
            self.forwarded(scope)
        turn: AbstractAsyncContextManager[None] = nullcontext()
        if self.gate is not None and self.gate.handles(scope):
            turn = self.gate.turn()
        try:
            async with turn:
                await self._flask(scope, body, send)
        except HTTPError as exc:  # the gate's line is full
            await _send_error(send, exc)

    async def _flask(self, scope: Scope, body: bytes, send: Send) -> None:
        """Flask's WSGI app run on this loop (async views re-enter it through greenback)."""
        try:
            environ: dict[str, Any] = dict(build_environ(scope, io.BytesIO(body)))  # type: ignore[arg-type]
        except (UnicodeError, ValueError, KeyError):
            await _send_error(send, HTTPError(400, "malformed request line or headers"))
            return
        await greenback.ensure_portal()
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input_terminated"] = True
        environ["wsgi.errors"] = _ErrorsToLog()
        started: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [
                (k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers
            ]
            return lambda _data: None

        try:
            result: Iterable[bytes] = self.app.wsgi_app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            # Flask turns view errors into JSON itself; this is a failure around it.
            log.exception("request failed outside the app's error handlers")
            await _send_error(send, HTTPError(500, "internal error"))
            return
        await send(
            {
                "type": "http.response.start",
                "status": started["status"],
                "headers": started["headers"],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class _ErrorsToLog:
    """``wsgi.errors`` that goes to logging, never blocking writes to a stream."""

    def write(self, text: str) -> None:
        if text.strip():
            log.error(text.rstrip())

    def flush(self) -> None:
        return None

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)


async def _send_error(send: Send, error: HTTPError) -> None:
    """Answer ``error`` before (or instead of) Flask, as :mod:`webapp.errors` would.

    These answers mostly refuse ``POST /event`` from pages on other origins, which
    must be able to read why: they are readable from any origin.
    """
    payload = error_body(error.message)
    headers = {**error.headers, **cors.ANY_ORIGIN}
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                *((k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[Message], deadline: float) -> Message:
        """``awaitable`` before the loop-clock ``deadline`` (no Task per call, unlike wait_for)."""
        async with asyncio.timeout_at(deadline):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def _within(awaitable: Awaitable[Message], deadline: float) -> Message:
        remaining = deadline - asyncio.get_running_loop().time()
        return await asyncio.wait_for(awaitable, max(remaining, 0))
