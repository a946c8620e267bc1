"""Writing a batch's visitor and visit deltas (db/rollups/visits.py) in its transaction.

After the user aggregates (db/rollups/writer.py), in this order, each statement's rows
sorted by primary key so concurrent batches lock rows in one order:

0. the visitor-day profiles (db/models.py): an insert that keeps an existing row but
   locks it, then a locking read of the same rows. A row carrying our token is ours: its
   values each gain a visitor. Otherwise the committed profile stands, and the values of
   our visits' profiles that it lacks become set rows of step 1. The lock (held until
   commit) makes the read see the committed row, for the reason step 2 gives;
1. the distinct-visitor sets (day, hour, and per breakdown value): ``INSERT IGNORE``
   with the transaction's token, then the new rows per bucket (exact under concurrency
   for the reason the package docstring gives);
2. the exit pages' (page, visitor) visit counts: an upsert adding this batch's changes,
   then a locking read of the same rows. The upsert holds those rows' exclusive locks
   until commit, so the read shows the committed count plus ours: the count before us
   is the read minus our change, and a visitor joins a page's exit visitors when its
   count goes from 0 to positive and leaves when it returns to 0. Exit visitors are the
   one distinct count that can shrink, which the grow-only token sets cannot express;
3. the day and hour counters, then the breakdown rows, adding the new visitors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import Table, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from db import models
from db.models import DAY_FIGURES, VALUE_FIGURES
from db.rollups.dialect import upsert_adding, upsert_keeping
from db.rollups.literals import Literals
from db.rollups.membership import Groups, MemberCache, grouped
from db.rollups.rows import Render, insert_new_members, write_rows
from db.rollups.visits import EXIT_PAGE, Profile, ProfileKey, VisitDeltas

ExitKey = tuple[str, date, str, str]
# Keys per locking read (bounded statements, as CHUNK_ROWS bounds writes).
READ_CHUNK = 1000


def _render(lit: Literals | None, kinds: str, shared: int = 0) -> Render | None:
    return None if lit is None else lit.renderer(kinds, shared)


async def _locked_rows(
    conn: AsyncConnection,
    lit: Literals | None,
    table: Table,
    kinds: str,
    keys: list[tuple[Any, ...]],
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The rows of ``table`` whose primary keys are ``keys`` (sorted; each field's kind as
    :meth:`Literals.renderer` names it), read with a locking read: key -> other columns.

    MySQL's PAD SPACE collations make ``"x"`` and ``"x "`` one key, so a row may come
    back spelled as it was first stored: such a key gets the row equal to it but for
    trailing spaces (SQLite keeps both rows, each found as itself)."""
    key_cols = list(table.primary_key.columns)
    rest = [c for c in table.c if not c.primary_key]
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for start in range(0, len(keys), READ_CHUNK):
        chunk = keys[start : start + READ_CHUNK]
        if lit is None:
            result = await conn.execute(
                select(*key_cols, *rest).where(tuple_(*key_cols).in_(chunk)).with_for_update()
            )
        else:
            render = lit.renderer(kinds)
            result = await conn.exec_driver_sql(
                f"SELECT {', '.join(c.name for c in [*key_cols, *rest])} FROM {table.name}"
                f" WHERE ({', '.join(c.name for c in key_cols)}) IN ("
                + ",".join(render(k) for k in chunk)
                + ") FOR UPDATE",
                execution_options={"no_parameters": True},
            )
        width = len(key_cols)
        for row in result:
            found[tuple(row[:width])] = tuple(row[width:])
    if all(key in found for key in keys):
        return found
    padded = {_unpadded(k): row for k, row in found.items()}
    return {key: found.get(key) or padded[_unpadded(key)] for key in keys}


def _unpadded(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.rstrip(" ") if isinstance(v, str) else v for v in key)


async def _profiles(
    conn: AsyncConnection, lit: Literals | None, deltas: VisitDeltas, token: int
) -> Counter[tuple[Any, ...]]:
    """Step 0 of the module docstring; returns the visitors it adds per value."""
    if not deltas.profiles:
        return Counter()
    t = models.rollup_day_visit_profiles
    keys: list[ProfileKey] = sorted(deltas.profiles)
    rows = [(*k, token, *deltas.profiles[k][0]) for k in keys]
    kinds = "swhn" + "h" * (len(t.c) - 4)
    await write_rows(conn, upsert_keeping(conn, t), "keep", t, rows, _render(lit, kinds))
    found = await _locked_rows(conn, lit, t, "swh", list(keys))
    stored: dict[ProfileKey, Profile] = {}
    new = []
    for key in keys:
        their_token, *profile = found[key]
        stored[key] = tuple(profile)
        if int(their_token) == token:
            new.append(key)
    deltas.resolve_profiles(stored)
    return deltas.profile_visitors(new, stored)


async def _exit_visitors(
    conn: AsyncConnection, lit: Literals | None, changes: Mapping[ExitKey, int]
) -> Counter[tuple[Any, ...]]:
    """Apply the exit (page, visitor) count changes; return the change of each exit
    page's visitors, keyed like the breakdown rows (site, day, ``exit_page``, digest)."""
    if not changes:
        return Counter()
    t = models.rollup_day_exit_visitors
    keys = sorted(changes)
    rows = [(*k, changes[k]) for k in keys]
    stmt = upsert_adding(conn, t, ("visits",))
    await write_rows(conn, stmt, "visits", t, rows, _render(lit, "swhhn", 3))
    now = await _locked_rows(conn, lit, t, "swhh", list(keys))
    out: Counter[tuple[Any, ...]] = Counter()
    for key in keys:
        after = int(now[key][0])
        before = after - changes[key]
        moved = int(after > 0) - int(before > 0)
        if moved:
            site, day, value_hash, _ = key
            out[(site, day, EXIT_PAGE, value_hash)] += moved
    return out


async def write_visit_deltas(
    conn: AsyncConnection,
    lit: Literals | None,
    deltas: VisitDeltas,
    token: int,
    cache: MemberCache | None,
) -> list[Groups]:
    """Add ``deltas`` to the visitor and visit aggregates (inside the caller's transaction);
    return its visitor-set rows (:func:`grouped`), for the cache once committed."""
    deltas.finish()
    profile_visitors = await _profiles(conn, lit, deltas, token)
    sets: list[tuple[Table, set[tuple[Any, ...]], str]] = [
        (models.rollup_day_visitors, deltas.day_visitors, "sw"),
        (models.rollup_hour_visitors, deltas.hour_visitors, "sw"),
        (models.rollup_day_value_visitors, deltas.value_visitors, "swsh"),
    ]
    new: list[Counter[tuple[Any, ...]]] = []
    written: list[Groups] = []
    for table, keys, kinds in sets:
        groups = grouped(keys)
        written.append(groups)
        unknown = groups if cache is None else cache.unknown(groups)
        new.append(await insert_new_members(conn, table, unknown, token, lit, kinds))
    new_day, new_hour, new_values = new
    new_values.update(profile_visitors)
    new_values.update(await _exit_visitors(conn, lit, deltas.exit_changes()))
    await _upsert_day_visits(conn, lit, deltas, new_day)
    await _upsert_hour_visits(conn, lit, deltas, new_hour)
    await _upsert_values(conn, lit, deltas, new_values)
    return written


async def _upsert_day_visits(
    conn: AsyncConnection,
    lit: Literals | None,
    deltas: VisitDeltas,
    visitors: Counter[tuple[Any, ...]],
) -> None:
    t = models.rollup_day_visits
    rows = []
    for key in sorted(set(deltas.day_visits) | set(visitors)):
        figures = list(deltas.day_visits.get(key, [0] * len(DAY_FIGURES)))
        figures[0] = visitors.get(key, 0)
        rows.append((*key, *figures))
    stmt = upsert_adding(conn, t, DAY_FIGURES)
    await write_rows(conn, stmt, "visits", t, rows, _render(lit, "sw" + "n" * len(DAY_FIGURES)))


async def _upsert_hour_visits(
    conn: AsyncConnection,
    lit: Literals | None,
    deltas: VisitDeltas,
    visitors: Counter[tuple[Any, ...]],
) -> None:
    t = models.rollup_hour_visits
    keys = sorted(set(deltas.hour_visits) | set(visitors))
    rows = [(*k, visitors.get(k, 0), deltas.hour_visits.get(k, 0)) for k in keys]
    stmt = upsert_adding(conn, t, ("visitors", "visits"))
    await write_rows(conn, stmt, "visits", t, rows, _render(lit, "swnn"))


async def _upsert_values(
    conn: AsyncConnection,
    lit: Literals | None,
    deltas: VisitDeltas,
    visitors: Counter[tuple[Any, ...]],
) -> None:
    t = models.rollup_day_values
    names = deltas.value_names
    rows = []
    for key in sorted(deltas.values):
        figures = deltas.values[key]
        rows.append((*key, names[key[3]], visitors.get(key, 0), *figures[1:]))
    stmt = upsert_adding(conn, t, VALUE_FIGURES)
    kinds = "swshs" + "n" * len(VALUE_FIGURES)
    await write_rows(conn, stmt, "figures", t, rows, _render(lit, kinds))
