"""Aggregates the worker keeps in each batch's transaction, so /stats never scans ``events``.

For every batch the worker's writer calls :func:`apply_batch` on the batch's own connection,
inside the transaction that inserts the batch's rows and its ledger row. The
aggregates therefore commit atomically with the rows they summarize, and a
replayed batch (stopped by the ledger's primary key before reaching here) changes
neither.

The batch is aggregated in memory first (:class:`Deltas`), then written with one
statement per table, rows sorted by primary key so that concurrent transactions
lock rows of a table in the same order:

1. ``INSERT IGNORE`` (SQLite: ``ON CONFLICT DO NOTHING``) of the (site, scope, day
   or hour, user digest) rows into the distinct-user sets, each row carrying this
   transaction's random ``token``;
2. one ``SELECT … WHERE token = ours GROUP BY bucket`` (through the token index):
   the rows that carry our token are exactly the rows *this* transaction
   inserted, i.e. the users new to each bucket;
3. one upsert (``INSERT … ON DUPLICATE KEY UPDATE`` / ``ON CONFLICT DO UPDATE``)
   each into the path views, the day counters, the hour counters (adding the
   events and the new users) and the per-site totals.

Why step 2 is exact under concurrency: an insert of a key that another
transaction inserted but has not committed waits for it (InnoDB's duplicate
check takes a lock on the key); if that transaction commits our row is ignored,
if it rolls back ours is inserted. Either way exactly one transaction ever
inserts a given key, and our own inserts are always visible to our own reads
(even a consistent-snapshot read), while rows inserted by others never carry
our token. So each distinct user increments a bucket's ``users`` counter once.
Deadlocks (1213) and lock-wait timeouts (1205) are OperationalErrors: the writer's
caller re-runs the whole batch transaction with the same batch id (and a new token).

Each worker process also remembers which user-set rows it knows are committed
and leaves them out of step 1 (:mod:`db.rollups.membership`, ``ROLLUP_CACHE_SIZE``).

The visitor and visit aggregates follow the user aggregates in the same transaction
(:mod:`~db.rollups.visits` says why each event adds its visit's ``after - before``;
:mod:`~db.rollups.visit_writer` how distinct visitors, including the exit pages' that
can shrink, stay exact). Bots' events only add to their day's ``bots``.

The package, by job: :mod:`~db.rollups.deltas` (a batch aggregated in memory),
:mod:`~db.rollups.visits` (its visitor and visit deltas),
:mod:`~db.rollups.dialect` (the statements that differ between MySQL and SQLite),
:mod:`~db.rollups.literals` (multi-row statements rendered as SQL literals on
MySQL, kept alone for review), :mod:`~db.rollups.membership` (the cache),
:mod:`~db.rollups.rows` (writing a table's rows; the token step),
:mod:`~db.rollups.writer` and :mod:`~db.rollups.visit_writer` (the batch's
statements, in order).

Only portable SQL is used (no triggers, procedures or RETURNING), so the same
statements run on MySQL, MariaDB and TiDB.
"""

from __future__ import annotations

from db.rollups.deltas import Deltas, aggregate, digest, scopes
from db.rollups.dialect import CHUNK_ROWS, execute_chunked, insert_ignore, upsert_adding
from db.rollups.membership import MemberCache, cache_of, configure_cache, forget
from db.rollups.writer import apply_batch, insert_events, write_deltas

__all__ = [
    "CHUNK_ROWS",
    "Deltas",
    "MemberCache",
    "aggregate",
    "apply_batch",
    "cache_of",
    "configure_cache",
    "digest",
    "execute_chunked",
    "forget",
    "insert_events",
    "insert_ignore",
    "scopes",
    "upsert_adding",
    "write_deltas",
]
