"""Aggregates the worker keeps in each batch's transaction (see the stats issue).

Until per-day rollup tables land, /stats reads the raw table and there is nothing
to maintain here; the writer already calls this hook inside the batch transaction
so that rollups, when added, commit atomically with the rows they summarize.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from asyncworker.protocol import Event


async def apply_batch(conn: AsyncConnection, batch: Sequence[Event]) -> None:
    """Write the batch's aggregate deltas on ``conn`` (inside the batch transaction)."""
    return None
