"""Which set rows a worker process knows are committed, so it need not write them.

A distinct-user or distinct-visitor set only grows, so a row known to be in it
would be ignored anyway and cannot be new: the writer leaves such rows out of the
batch's ``INSERT IGNORE``.
Rows are remembered only after the batch's transaction commits (the writer's
``apply_batch`` returns the callback that does it), never for a rolled-back
batch. ``analytics rebuild-rollups`` keeps this true: it recomputes a day from the
raw events, which still hold every remembered user. Deleting rollup rows or raw
events by other means while a worker runs (a restore, a manual ``DELETE``, a
retention job followed by a rebuild) needs a worker restart, or :func:`forget`
on its engine.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from db.settings import DEFAULT_ROLLUP_CACHE_SIZE

# Set-row keys grouped: each bucket (a key without its member) to its member digests.
Groups = dict[tuple[Any, ...], list[str]]


def grouped(keys: Iterable[tuple[Any, ...]]) -> Groups:
    """``keys`` (a bucket, then a member digest last) grouped by bucket. Why: a batch's
    thousands of set rows share few buckets, so the cache and the statement work per
    bucket, with set operations on its members, instead of key by key."""
    groups: Groups = {}
    for key in keys:
        members = groups.get(bucket := key[:-1])
        if members is None:
            groups[bucket] = [key[-1]]
        else:
            members.append(key[-1])
    return groups


class MemberCache:
    """Set rows known to be committed, grouped by bucket, least recently used out.

    A key is a bucket then a member digest: ``(site, scope, type, day or hour, user)``
    for the user sets, ``(site, day or hour, visitor)`` and ``(site, day, property,
    value digest, visitor)`` for the visitor sets. Buckets of different tables never
    collide (their lengths or field types differ: a ``date`` is not equal to a
    ``datetime``, nor a scope number to a day).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._buckets: OrderedDict[tuple[Any, ...], set[str]] = OrderedDict()

    def unknown(self, groups: Groups) -> Groups:
        """The members of ``groups`` (:func:`grouped` keys) not known to be committed."""
        if not self._buckets:
            return groups
        buckets = self._buckets
        out: Groups = {}
        for bucket, members in groups.items():
            known = buckets.get(bucket)
            if known is None:
                out[bucket] = members
            elif not known.issuperset(members):
                out[bucket] = [m for m in members if m not in known]
        return out

    def remember(self, *groupsets: Groups) -> None:
        """Remember the rows of ``groupsets`` (:func:`grouped` committed set-row keys);
        their buckets become the most recently used (in no particular order)."""
        if self.capacity <= 0:
            return
        buckets = self._buckets
        added = 0
        for groups in groupsets:
            for bucket, members in groups.items():
                known = buckets.get(bucket)
                if known is None:
                    known = buckets[bucket] = set(members)
                    added += len(known)
                else:
                    before = len(known)
                    known.update(members)
                    added += len(known) - before
                    buckets.move_to_end(bucket)
        self.size += added
        while self.size > self.capacity and buckets:
            _, evicted = buckets.popitem(last=False)
            self.size -= len(evicted)

    def clear(self) -> None:
        self._buckets.clear()
        self.size = 0


_caches: weakref.WeakKeyDictionary[Engine, MemberCache] = weakref.WeakKeyDictionary()


def configure_cache(engine: AsyncEngine | Engine, size: int) -> None:
    """Size the engine's cache (``ROLLUP_CACHE_SIZE``; 0 turns it off). The worker calls
    this once at start; an engine never configured gets :data:`DEFAULT_ROLLUP_CACHE_SIZE`."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    _caches[sync] = MemberCache(size)


def cache_of(engine: Engine) -> MemberCache:
    """The engine's cache (created at the default size on first use)."""
    cache = _caches.get(engine)
    if cache is None:
        cache = _caches[engine] = MemberCache(DEFAULT_ROLLUP_CACHE_SIZE)
    return cache


def forget(engine: AsyncEngine | Engine) -> None:
    """Drop what this process remembers for ``engine`` (after deleting rollup rows)."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    cache = _caches.get(sync)
    if cache is not None:
        cache.clear()
