"""Creating and upgrading the schema: ``analytics init-db`` runs the Alembic migrations.

The migrations live in ``db/migrations`` and run on the async engine's connection
(``run_sync``), so the same URL and TLS settings as the app are used. Running them
again is a no-op, which makes ``init-db`` idempotent.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def init_db(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema (creating it from nothing if needed)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
