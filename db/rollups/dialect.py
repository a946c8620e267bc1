"""The few statements whose SQL differs between MySQL/MariaDB/TiDB and SQLite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

# Rows per statement when writing large aggregates (rebuild-rollups).
CHUNK_ROWS = 2000


def _insert(conn: AsyncConnection, table: Table) -> Any:
    if conn.dialect.name == "sqlite":
        return sqlite_insert(table)
    return mysql_insert(table)


def insert_ignore(conn: AsyncConnection, table: Table) -> Insert:
    """INSERT that skips rows whose primary key exists (``INSERT IGNORE`` / ``DO NOTHING``)."""
    stmt = _insert(conn, table)
    if conn.dialect.name == "sqlite":
        return stmt.on_conflict_do_nothing()  # type: ignore[no-any-return]
    return stmt.prefix_with("IGNORE")  # type: ignore[no-any-return]


def upsert_adding(
    conn: AsyncConnection, table: Table, add: Sequence[str], replace: Sequence[str] = ()
) -> Insert:
    """INSERT that, on an existing key, adds the ``add`` columns and overwrites ``replace``."""
    stmt = _insert(conn, table)
    if conn.dialect.name == "sqlite":
        changes = {c: table.c[c] + stmt.excluded[c] for c in add}
        changes.update({c: stmt.excluded[c] for c in replace})
        return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=list(table.primary_key.columns), set_=changes
        )
    changes = {c: table.c[c] + stmt.inserted[c] for c in add}
    changes.update({c: stmt.inserted[c] for c in replace})
    return stmt.on_duplicate_key_update(changes)  # type: ignore[no-any-return]


def upsert_keeping(conn: AsyncConnection, table: Table) -> Insert:
    """INSERT that leaves an existing row as it is but, on MySQL, still takes its
    exclusive lock (``ON DUPLICATE KEY UPDATE`` of the first key column to itself), so a
    locking read that follows sees the committed row without upgrading a shared lock.
    SQLite has one writer at a time: ``DO NOTHING``."""
    stmt = _insert(conn, table)
    if conn.dialect.name == "sqlite":
        return stmt.on_conflict_do_nothing()  # type: ignore[no-any-return]
    first = next(iter(table.primary_key.columns))
    return stmt.on_duplicate_key_update({first.name: first})  # type: ignore[no-any-return]


async def execute_chunked(
    conn: AsyncConnection, stmt: Any, rows: Sequence[Mapping[str, Any]], chunk: int | None = None
) -> None:
    """Executemany ``stmt`` (the driver sends multi-row statements) in bounded chunks
    (``chunk`` rows, :data:`CHUNK_ROWS` unless given)."""
    size = CHUNK_ROWS if chunk is None else chunk
    for start in range(0, len(rows), size):
        await conn.execute(stmt, list(rows[start : start + size]))
