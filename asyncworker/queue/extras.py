"""The queue's Redis state beside the event pipeline: dead letters and sign-in counters.

Mixed into :class:`asyncworker.queue.Queue`, which stays the one owner of Redis: the
dead letters an operator lists, requeues or purges (``analytics dead-letters``), and
the sign-in attempt counters the web edge's throttling keeps.
"""

from __future__ import annotations

from typing import cast

from asyncworker.keys import QueueKeys, site_of
from asyncworker.queue.client import Client, Script


class QueueExtras:
    """Operations on one shard's dead letters and on the sign-in failure counters."""

    redis: Client
    keys: QueueKeys

    # ------------------------------------------------------------ sign-in throttling

    _attempt = Script("attempt")
    _give_back = Script("give_back")

    async def count_attempt(self, counters: list[tuple[str, int]], window_s: int) -> int:
        """Count a sign-in attempt on every counter (:meth:`QueueKeys.login_attempts`
        names, each with its limit), or none when one is at its limit: 0 when counted,
        else the seconds to wait (one script: concurrent attempts cannot overrun a limit)."""
        keys = [name for name, _ in counters]
        args = [window_s, *(limit for _, limit in counters)]
        return int(await self._attempt(keys=keys, args=args))

    async def give_back(self, counters: list[str]) -> None:
        """Undo one :meth:`count_attempt` on ``counters`` (a success, or no check made)."""
        await self._give_back(keys=counters)

    # ------------------------------------------------------------ dead letters

    async def dead_letters(self) -> list[bytes]:
        """Every dead letter, newest first."""
        return cast("list[bytes]", await self.redis.lrange(self.keys.dead, 0, -1))

    _requeue = Script("requeue")

    async def requeue(self, entry: bytes, raw: bytes) -> bool:
        """Move one dead letter back onto the queue; False if it was already gone.

        KEYS: the dead-letter list, the queue, the pending counts. Once, even if two
        requeues race; its site (when the message names one) has one more event pending.
        """
        keys = [self.keys.dead, self.keys.queue, self.keys.pending]
        return int(await self._requeue(keys=keys, args=[entry, raw, site_of(raw) or ""])) == 1

    async def purge(self, entries: list[bytes]) -> int:
        """Delete these dead letters (each once); how many were still there."""
        removed = 0
        for entry in entries:
            removed += int(await self.redis.lrem(self.keys.dead, 1, entry))  # type: ignore[arg-type]
        return removed
