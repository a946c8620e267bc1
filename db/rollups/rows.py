"""Writing rows of a rollup table, the part shared by the user and visitor aggregates.

:func:`write_rows` sends a table's rows as SQL literals on MySQL (db/rollups/literals)
or by executemany elsewhere; :func:`insert_new_members` is the token step of the
package docstring: insert a distinct set's rows if absent and count, per bucket, the
rows this transaction inserted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from db.rollups.dialect import execute_chunked, insert_ignore
from db.rollups.literals import Literals, send_values, statement_frame
from db.rollups.membership import Groups

Render = Callable[[tuple[Any, ...]], str]


async def write_rows(
    conn: AsyncConnection,
    stmt: Insert,
    name: str,
    table: Table,
    rows: list[tuple[Any, ...]],
    render: Render | None,
) -> None:
    """Write ``rows`` (tuples in ``table``'s column order) with ``stmt``, in chunks:
    as literals rendered by ``render`` where there is one, else by executemany."""
    if not rows:
        return
    if render is None:
        names = [c.name for c in table.c]
        await execute_chunked(conn, stmt, [dict(zip(names, row, strict=True)) for row in rows])
        return
    head, tail = statement_frame(conn, stmt, name, table)
    await send_values(conn, head, [render(row) for row in rows], tail)


async def insert_new_members(
    conn: AsyncConnection,
    table: Table,
    groups: Groups,
    token: int,
    lit: Literals | None,
    kinds: str,
) -> Counter[tuple[Any, ...]]:
    """Insert a set's rows (``groups`` of primary keys: buckets whose fields are
    ``kinds``, as :meth:`Literals.set_rows` reads them, to member digests) carrying
    ``token``; return how many were new per bucket (the primary key without its member)."""
    if not groups:
        return Counter()
    stmt = insert_ignore(conn, table)
    if lit is None:
        rows = [(*b, m, token) for b in sorted(groups) for m in sorted(groups[b])]
        await write_rows(conn, stmt, "ignore", table, rows, None)
    else:
        head, tail = statement_frame(conn, stmt, "ignore", table)
        await send_values(conn, head, lit.set_rows(groups, kinds, token), tail)
    cols = list(table.primary_key.columns)[:-1]
    found = await conn.execute(
        select(*cols, func.count()).where(table.c.token == token).group_by(*cols)
    )
    new: Counter[tuple[Any, ...]] = Counter()
    for *bucket, n in found:
        new[tuple(bucket)] += int(n)
    return new
