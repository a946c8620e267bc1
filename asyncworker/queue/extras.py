"""The queue's Redis state beside the event pipeline: dead letters and sign-in counters.

Mixed into :class:`asyncworker.queue.Queue`, which stays the one owner of Redis: the
dead letters an operator lists, requeues or purges (``analytics dead-letters``), and
the failed sign-in counters the web edge's throttling reads.
"""

from __future__ import annotations

from typing import cast

from asyncworker.keys import QueueKeys
from asyncworker.queue.client import Client, Script


class QueueExtras:
    """Operations on one shard's dead letters and on the sign-in failure counters."""

    redis: Client
    keys: QueueKeys

    # ------------------------------------------------------------ sign-in throttling

    _fail = Script("fail")

    async def count_failure(self, counters: list[str], window_s: int) -> int:
        """Count a failed sign-in on each counter (:meth:`QueueKeys.login_failures` names);
        the highest count."""
        return int(await self._fail(keys=counters, args=(window_s,)))

    async def failures(self, counters: list[str]) -> tuple[int, int]:
        """The highest count among ``counters`` and the seconds until that one expires."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in counters:
                pipe.get(name)
                pipe.ttl(name)
            answers = await pipe.execute()
        pairs = [(int(answers[i] or 0), int(answers[i + 1])) for i in range(0, len(answers), 2)]
        count, ttl = max(pairs, default=(0, 0))
        return count, max(ttl, 1) if count else 0

    # ------------------------------------------------------------ dead letters

    async def dead_letters(self) -> list[bytes]:
        """Every dead letter, newest first."""
        return cast("list[bytes]", await self.redis.lrange(self.keys.dead, 0, -1))

    _requeue = Script("requeue")

    async def requeue(self, entry: bytes, raw: bytes) -> bool:
        """Move one dead letter back onto the queue; False if it was already gone.

        KEYS: the dead-letter list, the queue. Once, even if two requeues race.
        """
        return (
            int(await self._requeue(keys=[self.keys.dead, self.keys.queue], args=[entry, raw])) == 1
        )

    async def purge(self, entries: list[bytes]) -> int:
        """Delete these dead letters (each once); how many were still there."""
        removed = 0
        for entry in entries:
            removed += int(await self.redis.lrem(self.keys.dead, 1, entry))  # type: ignore[arg-type]
        return removed
