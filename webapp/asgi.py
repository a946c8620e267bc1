"""The ASGI application: ``hypercorn -k uvloop webapp.asgi:app``.

Importing builds the Flask app (reading settings), but opens no connection: the
Redis pool and the engine are created in the lifespan startup, on the loop that
will serve the requests.
"""

from __future__ import annotations

from flask import Flask

from webapp import create_app
from webapp.bridge import AsgiBridge
from webapp.fastpath import EventFastPath
from webapp.resources import close_resources, open_resources


def make_asgi(flask_app: Flask) -> AsgiBridge:
    async def startup() -> None:
        await open_resources(flask_app)

    async def shutdown() -> None:
        await close_resources(flask_app)

    return AsgiBridge(
        flask_app,
        on_startup=startup,
        on_shutdown=shutdown,
        fast_path=EventFastPath(flask_app),
    )


app = make_asgi(create_app())
