"""The migrations create exactly the schema that db/models.py declares.

Migrations freeze their own column types (editing a model must not change what an
old revision creates), so this is what keeps the two in step: Alembic's own
comparison of the migrated database with the models finds no difference, on
MariaDB and on SQLite.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.engine import create_engine
from db.models import metadata
from db.settings import Settings


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False}
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_equals_the_models(schema: Settings) -> None:
    engine = create_engine(schema)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert diff == []
