"""The migrations create exactly the schema that db/models.py declares.

Migrations freeze their own column types (editing a model must not change what an
old revision creates), so this is what keeps the two in step: Alembic's own
comparison of the migrated database with the models finds no difference, on
MariaDB and on SQLite.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.engine import create_engine
from db.models import metadata
from db.schema import alembic_config
from db.settings import Settings
from tests.conftest import make_settings, temporary_mariadb


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


def _keys_in_any_order(shown: str) -> tuple[str, ...]:
    """``SHOW CREATE TABLE`` with its secondary keys sorted: MariaDB lists them in the
    order they were created, which ``create_all`` takes from a set (a table's indexes)."""
    lines = shown.splitlines()
    keys = sorted(line.rstrip(",") for line in lines if line.startswith("  KEY "))
    return (*[line.rstrip(",") for line in lines if not line.startswith("  KEY ")], *keys)


async def test_migrated_tables_equal_create_all_on_mariadb(mariadb_server: str) -> None:
    """Table options too (engine, charset, collation), which Alembic's comparison skips:
    ``SHOW CREATE TABLE`` of every table is the same after the migrations as after
    ``metadata.create_all``."""
    shown: list[dict[str, tuple[str, ...]]] = []
    for build in ("migrations", "create_all"):
        with temporary_mariadb(mariadb_server) as url:
            settings = make_settings(DATABASE_URL=url)
            engine = create_engine(settings)
            try:
                async with engine.begin() as conn:
                    if build == "migrations":
                        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
                    else:
                        await conn.run_sync(metadata.create_all)
                    shown.append(
                        {
                            name: _keys_in_any_order(
                                (await conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`")).one()[1]
                            )
                            for name in metadata.tables
                        }
                    )
            finally:
                await engine.dispose()
    assert shown[0] == shown[1]
