"""REDIS_WAIT_REPLICAS on a single Redis without replicas: never acknowledged.

On the test cluster (``tests/cluster``) the same calls are acknowledged by a replica.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asyncworker.queue import EnqueueResult, NotReplicated, Queue
from db.settings import Settings
from tests.helpers import queued_event


async def test_an_event_no_replica_acknowledged_is_never_accepted(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url, REDIS_WAIT_REPLICAS="1")
    async with Queue.for_web(settings) as queue:
        outcome = await queue.enqueue_event(queued_event("site", "id-1", "user"), None)
        assert outcome is EnqueueResult.UNREPLICATED
        assert await queue.totals() == (1, 0)  # it is in the queue, and may be stored
        retry = await queue.enqueue_event(queued_event("site", "id-1", "user"), None)
        assert retry is EnqueueResult.UNREPLICATED  # not queued twice, still no 202
        assert await queue.totals() == (1, 0)


async def test_a_worker_does_not_store_a_batch_no_replica_holds(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url, REDIS_WAIT_REPLICAS="1")
    async with Queue.for_worker(settings) as queue:
        inflight = queue.keys.inflight("c")
        [marker] = await queue.claim(inflight, "w", b"{}")
        with pytest.raises(NotReplicated):
            await queue.confirm(inflight, marker)
        assert not await queue.confirm(inflight, b"#batch:someone-else")
