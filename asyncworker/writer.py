"""The batch writer: one transaction per batch, replay-safe through the batch ledger.

A batch becomes one multi-row ``INSERT ... VALUES (...), (...)`` into ``events``
(:func:`db.rollups.insert_events`), plus a row in ``ingest_batches`` for the batch
id, and the batch's rollup deltas, in the same transaction; once it has committed,
the callback :func:`db.rollups.apply_batch` returned is run. Writing a batch whose
id is already in the ledger changes nothing and reports it as a replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import rollups
from db.event import Event
from db.models import ingest_batches

LEDGER_KEEP = timedelta(days=1)


# The database refuses a row itself (a value it cannot store): retrying the same batch
# would fail forever, so the caller isolates the event and dead-letters it.
REFUSALS: tuple[type[Exception], ...] = (DataError, IntegrityError)

# How long one batch transaction may take before it is abandoned and retried (the
# ledger makes the retry safe): a server that accepts connections but never answers
# must not hang a consumer, which would also keep its batch from being adopted.
WRITE_TIMEOUT_S = 60.0


def is_transient(exc: BaseException) -> bool:
    """Errors to wait out and retry: the server is away, busy, timed out, or not ready.

    A missing table or any other database-side problem is waited out too (with one
    log line), never turned into dead letters: only :data:`REFUSALS` are about the
    events themselves. Anything that is not a database or network error is a bug and
    propagates.
    """
    if isinstance(exc, REFUSALS):
        return False
    return isinstance(
        exc, (SQLAlchemyError, OSError, ConnectionError, TimeoutError, asyncio.TimeoutError)
    )


async def write_batch_bounded(engine: AsyncEngine, batch_id: str, batch: Sequence[Event]) -> bool:
    """:func:`write_batch` with :data:`WRITE_TIMEOUT_S`; a timeout is transient."""
    return await asyncio.wait_for(write_batch(engine, batch_id, batch), WRITE_TIMEOUT_S)


async def _already_committed(engine: AsyncEngine, batch_id: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(ingest_batches.c.batch_id).where(ingest_batches.c.batch_id == batch_id)
        )
    return found is not None


async def write_batch(engine: AsyncEngine, batch_id: str, batch: Sequence[Event]) -> bool:
    """Store ``batch`` exactly once. Returns False when the batch was already committed."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    committed = None
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(ingest_batches).values(
                    batch_id=batch_id, events=len(batch), committed_at=now
                )
            )
            if batch:
                await rollups.insert_events(conn, batch)
                committed = await rollups.apply_batch(conn, batch)
    except IntegrityError:
        if await _already_committed(engine, batch_id):
            return False
        raise
    if committed is not None:
        committed()
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
