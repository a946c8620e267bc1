"""The one async SQLAlchemy engine a process uses, built from :class:`Settings`.

Created once per process (in the ASGI lifespan on the serving loop, or at worker
start), never per request: an engine and its pool are bound to the event loop
that created them.
"""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.settings import Settings

CONNECT_TIMEOUT_S = 5


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verified TLS: the TiDB Cloud CA when given, else the system's trust store."""
    cafile = str(settings.tidb_ca_path) if settings.tidb_ca_path else None
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def mysql_connect_args(settings: Settings) -> dict[str, Any]:
    """Driver arguments for aiomysql: a connect timeout (its default waits forever on a
    server that accepts but never answers), and verified TLS when TIDB_CA_PATH or
    FORCE_SSL asks for it."""
    args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if settings.use_tls:
        args["ssl"] = _ssl_context(settings)
    return args


def create_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    """Build the engine; for SQLite also create the data directory and tune the file."""
    url = settings.database_url
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # One writer at a time is SQLite's rule; a wait instead of "database is locked".
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600)
        kwargs["connect_args"] = mysql_connect_args(settings)
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets /stats read while the worker writes; NORMAL sync is durable
            # across process crashes (the guarantee we give) and much faster.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine
