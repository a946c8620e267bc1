"""The ASGI application: ``hypercorn -k uvloop webapp.asgi:app``.

Importing builds the Flask app (reading settings), but opens no connection: the
Redis pool and the engine are created in the lifespan startup, on the loop that
will serve the requests.
"""

from __future__ import annotations

from flask import Flask

from webapp import create_app
from webapp.auth.gate import SignInGate
from webapp.auth.headers import forwarded_allow_of
from webapp.bridge import AsgiBridge
from webapp.fastpath import EventFastPath
from webapp.proxy import Forwarded
from webapp.resources import close_resources, open_resources


def make_asgi(flask_app: Flask) -> AsgiBridge:
    async def startup() -> None:
        await open_resources(flask_app)

    async def shutdown() -> None:
        await close_resources(flask_app)

    settings = flask_app.config["SETTINGS"]
    forwarded = Forwarded.from_settings(forwarded_allow_of(flask_app), settings.public_url)
    return AsgiBridge(
        flask_app,
        on_startup=startup,
        on_shutdown=shutdown,
        fast_path=EventFastPath(flask_app),
        forwarded=forwarded.apply,
        gate=SignInGate(),
    )


app = make_asgi(create_app())
