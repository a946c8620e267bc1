"""The batch writer: one transaction per batch, replay-safe through the batch ledger.

A batch becomes one multi-row INSERT into ``events`` (SQLAlchemy hands the list
of rows to the driver's executemany, which aiomysql rewrites into a single
``INSERT ... VALUES (...), (...)``), plus a row in ``ingest_batches`` for the batch
id, in the same transaction. Writing a batch whose id is already in the ledger
changes nothing and reports it as a replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from asyncworker.protocol import Event
from db import rollups
from db.models import events as events_table
from db.models import ingest_batches

LEDGER_KEEP = timedelta(days=1)


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying as they are: the server is away, or asked us to retry.

    Anything else (a row the database refuses) would fail forever, so the caller
    splits the batch to find the offending event instead of stalling the queue.
    """
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


async def _already_committed(engine: AsyncEngine, batch_id: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(ingest_batches.c.batch_id).where(ingest_batches.c.batch_id == batch_id)
        )
    return found is not None


async def write_batch(engine: AsyncEngine, batch_id: str, batch: Sequence[Event]) -> bool:
    """Store ``batch`` exactly once. Returns False when the batch was already committed."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(ingest_batches).values(
                    batch_id=batch_id, events=len(batch), committed_at=now
                )
            )
            if batch:
                await conn.execute(insert(events_table), [event.row() for event in batch])
                await rollups.apply_batch(conn, batch)
    except IntegrityError:
        if await _already_committed(engine, batch_id):
            return False
        raise
    return True


async def prune_ledger(engine: AsyncEngine, keep_ids: set[str]) -> int:
    """Forget batch ids older than a day, except those of batches still in flight.

    A batch can only be replayed while its in-flight list exists, and every such
    list's id is in ``keep_ids``, so the ledger stays small without ever losing
    the record that makes a pending replay a no-op.
    """
    cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - LEDGER_KEEP
    async with engine.begin() as conn:
        old = (
            await conn.scalars(
                select(ingest_batches.c.batch_id)
                .where(ingest_batches.c.committed_at < cutoff)
                .limit(5000)
            )
        ).all()
        doomed = [bid for bid in old if bid.split("-", 1)[0] not in keep_ids]
        if doomed:
            await conn.execute(delete(ingest_batches).where(ingest_batches.c.batch_id.in_(doomed)))
    return len(doomed)
