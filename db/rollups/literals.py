"""SQL literals for multi-row statements on MySQL/MariaDB/TiDB, kept alone for review.

On MySQL/MariaDB/TiDB the rows of a statement are rendered as SQL literals here
rather than handed to the driver's executemany, which escapes every parameter of
every row one by one in Python (most of a batch's CPU time): the key prefix of a
bucket (site, scope, type, day or hour) is rendered once per bucket, strings once
each (with the driver connection's own ``escape``, which follows its charset and
NO_BACKSLASH_ESCAPES), digests are hex and numbers and dates render themselves.
The statement's text around ``VALUES`` comes from SQLAlchemy's compilation of
the same Core statement, so the SQL is the one the executemany path would send.
SQLite keeps the executemany path.

Everything that turns a value into SQL text is in this module: strings go through
the driver connection's ``escape`` only, digests are hex produced by
:func:`hashlib.md5`, numbers are ``int()``-ed and dates rendered by ``isoformat``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from db.event import Event
from db.models import EVENT_COLUMNS, events
from db.rollups import dialect
from db.rollups.membership import Groups

_HEX = re.compile(r"[0-9a-f]{32}", re.ASCII)
_FRAMES: dict[tuple[str, str, str], tuple[str, str]] = {}


def statement_frame(
    conn: AsyncConnection, stmt: Insert, name: str, table: Table
) -> tuple[str, str]:
    """``(head, tail)`` of ``stmt`` compiled: ``head + "(…),(…)" + tail`` is the statement."""
    key = (conn.dialect.name, name, table.name)
    frame = _FRAMES.get(key)
    if frame is None:
        sql = str(stmt.compile(dialect=conn.dialect))
        marker = " VALUES ("
        at = sql.index(marker) + len(marker) - 1
        close = sql.index(")", at)
        placeholders = sql[at + 1 : close].split(",")
        if len(placeholders) != len(table.c):
            raise RuntimeError(f"unexpected compiled INSERT for {table.name}: {sql}")
        frame = _FRAMES[key] = (sql[:at], sql[close + 1 :])
    return frame


class Literals:
    """SQL literals for one statement batch, memoized (keys and strings repeat a lot)."""

    def __init__(self, escape: Callable[[Any], str]) -> None:
        self._escape = escape
        self._strings: dict[str, str] = {}
        self._keys: dict[tuple[Any, ...], str] = {}
        self._when: dict[date, str] = {}

    def string(self, value: str) -> str:
        out = self._strings.get(value)
        if out is None:
            out = self._strings[value] = self._escape(value)
        return out

    def key(self, key: tuple[Any, ...]) -> str:
        """``'site',scope,'type','bucket'`` for a (site, scope, type, day or hour) key."""
        out = self._keys.get(key)
        if out is None:
            site, scope, etype, when = key
            text = when.isoformat(" ") if isinstance(when, datetime) else when.isoformat()
            out = f"{self.string(site)},{int(scope)},{self.string(etype)},'{text}'"
            self._keys[key] = out
        return out

    # Rows of the rollup tables, as tuples in their tables' column order.

    def count_row(self, r: tuple[Any, ...]) -> str:
        """(site, scope, type, bucket, events, users): a day or hour counter."""
        return f"({self.key(r[:4])},{int(r[4])},{int(r[5])})"

    def path_row(self, r: tuple[Any, ...]) -> str:
        """(site, scope, type, day, digest, path, views): a path's views."""
        return f"({self.key(r[:4])},'{r[4]}',{self.string(r[5])},{int(r[6])})"

    def site_row(self, r: tuple[Any, ...]) -> str:
        """(site, events): a site's total."""
        return f"({self.string(r[0])},{int(r[1])})"

    def when(self, value: date) -> str:
        """A day, or an hour (a datetime without fraction), memoized."""
        out = self._when.get(value)
        if out is None:
            text = value.isoformat(" ") if isinstance(value, datetime) else value.isoformat()
            out = self._when[value] = f"'{text}'"
        return out

    def digest_text(self, value: str) -> str:
        """A hex digest (md5's, or a visitor id checked by db/visit.py) in quotes; anything
        else is escaped as text, so no value can leave its quotes."""
        if value.isascii() and value.isalnum():
            return f"'{value}'"
        return self.string(value)

    def _parts(self, kinds: str) -> list[Callable[[Any], str]]:
        """The renderers of fields of ``kinds``, one letter each: ``s`` text (escaped,
        memoized), ``w`` a day or hour, ``h`` a hex digest, ``n`` an integer."""
        render: dict[str, Callable[[Any], str]] = {
            "s": self.string,
            "w": self.when,
            "h": self.digest_text,
            "n": lambda v: str(int(v)),
        }
        return [render[k] for k in kinds]

    def set_rows(self, groups: Groups, kinds: str, token: int) -> list[str]:
        """``(bucket…,'member',token)`` for each member of each bucket of ``groups``
        (buckets whose fields are ``kinds``), in the order of the sorted whole keys: by
        bucket, then member. Each bucket is rendered once, for all its members."""
        parts = self._parts(kinds)
        tail = f",{int(token)})"
        out: list[str] = []
        for bucket in sorted(groups):
            head = "(" + ",".join([p(v) for p, v in zip(parts, bucket, strict=True)]) + ","
            for member in sorted(groups[bucket]):
                if member.isascii() and member.isalnum():  # as digest_text: hex needs no escape
                    out.append(f"{head}'{member}'{tail}")
                else:
                    out.append(head + self.string(member) + tail)
        return out

    def renderer(self, kinds: str, shared: int = 0) -> Callable[[tuple[Any, ...]], str]:
        """A row renderer for tuples whose fields are ``kinds`` (:meth:`_parts`).
        The first ``shared`` fields (a bucket that many rows share) are rendered once."""
        parts = self._parts(kinds)

        def fields(r: tuple[Any, ...]) -> str:
            return ",".join([p(v) for p, v in zip(parts, r, strict=True)])

        if not shared:
            return lambda r: "(" + fields(r) + ")"
        head, rest = parts[:shared], parts[shared:]
        prefixes: dict[tuple[Any, ...], str] = {}

        def row(r: tuple[Any, ...]) -> str:
            key = r[:shared]
            prefix = prefixes.get(key)
            if prefix is None:
                prefix = prefixes[key] = ",".join([p(v) for p, v in zip(head, key, strict=True)])
            tail = ",".join([p(v) for p, v in zip(rest, r[shared:], strict=True)])
            return f"({prefix},{tail})"

        return row


async def literals_for(conn: AsyncConnection) -> Literals | None:
    """Literal rendering for ``conn``, or None where the executemany path is used."""
    if conn.dialect.name == "sqlite":
        return None
    raw = await conn.get_raw_connection()
    escape = getattr(raw.driver_connection, "escape", None)
    return None if escape is None else Literals(escape)


# Longest statement sent (characters of VALUES), as PyMySQL's executemany splits
# (``max_stmt_length``): far below any server's max_allowed_packet.
MAX_STATEMENT_CHARS = 1_000_000


async def send_values(conn: AsyncConnection, head: str, values: list[str], tail: str = "") -> None:
    """``head + values joined by commas + tail``, split into statements of bounded size."""
    if not values:
        return
    start, size = 0, 0
    for i, value in enumerate(values):
        size += len(value) + 1
        if i > start and (size > MAX_STATEMENT_CHARS or i - start >= dialect.CHUNK_ROWS):
            await conn.exec_driver_sql(
                head + ",".join(values[start:i]) + tail, execution_options={"no_parameters": True}
            )
            start, size = i, len(value) + 1
    await conn.exec_driver_sql(
        head + ",".join(values[start:]) + tail, execution_options={"no_parameters": True}
    )


_EVENTS_HEAD: dict[str, str] = {}


def events_head(conn: AsyncConnection) -> str:
    """``INSERT INTO events (columns) VALUES `` for ``conn``'s dialect."""
    head = _EVENTS_HEAD.get(conn.dialect.name)
    if head is None:
        prep = conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in EVENT_COLUMNS)
        head = f"INSERT INTO {prep.format_table(events)} ({cols}) VALUES "
        _EVENTS_HEAD[conn.dialect.name] = head
    return head


def _value(lit: Literals, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return lit.string(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat(' ', 'microseconds')}'"
    return str(int(value))


def event_values(lit: Literals, batch: Sequence[Event]) -> list[str]:
    """One ``(…)`` per event, its values in :data:`~db.models.EVENT_COLUMNS` order
    (bots are counted, never stored: the caller leaves them out).

    Why inline: most of an event's 24 values are NULL or text, which are rendered here
    without a call (what :func:`_value` would give); the rest go through :func:`_value`."""
    string = lit.string
    out = []
    for event in batch:
        values = [
            "NULL" if v is None else string(v) if v.__class__ is str else _value(lit, v)
            for v in event.values()
        ]
        out.append("(" + ",".join(values) + ")")
    return out
