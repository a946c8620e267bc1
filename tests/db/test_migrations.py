"""The migrations create exactly the schema that db/models.py declares.

Migrations freeze their own column types (editing a model must not change what an
old revision creates), so this is what keeps the two in step: Alembic's own
comparison of the migrated database with the models finds no difference, on
MariaDB and on SQLite. And the copy of a migrated database that most tests start from
(the ``schema`` fixture) is the same as running the migrations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.engine import create_engine
from db.models import metadata
from db.schema import alembic_config
from db.settings import Settings
from tests.conftest import make_settings, migrate, temporary_mariadb


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False}
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_equals_the_models(settings: Settings) -> None:
    await migrate(settings)
    engine = create_engine(settings)
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


async def _described(settings: Settings) -> dict[str, Any]:
    """What a database's schema is: every table's definition, the migrations' version,
    and on SQLite the file's journal mode."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            run = conn.exec_driver_sql
            if settings.database_url.get_backend_name() == "sqlite":
                query = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
                tables = {row[1]: tuple(row) for row in await run(query)}
                extra = [(await run("PRAGMA journal_mode")).scalar()]
            else:
                names = [row[0] for row in await run("SHOW FULL TABLES")]
                tables = {n: (await run(f"SHOW CREATE TABLE `{n}`")).one()[1] for n in names}
                extra = []
            version = [tuple(row) for row in await run("SELECT * FROM alembic_version")]
    finally:
        await engine.dispose()
    return {"tables": tables, "version": version, "extra": extra}


async def test_the_schema_fixtures_copy_equals_a_migrated_database(
    schema: Settings, settings_factory: Callable[..., Settings], database_url: str
) -> None:
    """The ``schema`` fixture copies a database migrated once per session; a database
    migrated for this test alone is described the same."""
    if database_url.startswith("sqlite"):
        fresh = settings_factory(database_url.replace("analytics.db", "fresh.db"))
        await migrate(fresh)
        assert await _described(schema) == await _described(fresh)
        return
    with temporary_mariadb(database_url.rsplit("/", 1)[0]) as url:
        fresh = settings_factory(url)
        await migrate(fresh)
        assert await _described(schema) == await _described(fresh)
