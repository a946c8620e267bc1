"""Concurrent enqueues share script calls, and each request still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from asyncworker.queue import EnqueueResult, Queue
from asyncworker.queue.coalesce import Coalescer
from db.event import decode_wire
from db.settings import Settings
from tests.helpers import queued_event


async def test_a_lone_item_is_sent_at_once_and_a_crowd_in_few_calls() -> None:
    calls: list[list[int]] = []

    async def send(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.sleep(0.01)  # a round trip, during which others arrive
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(send, limit=4)
    assert await coalescer.submit(1) == 10
    assert calls == [[1]]
    results = await asyncio.gather(*(coalescer.submit(n) for n in range(2, 12)))
    assert results == [n * 10 for n in range(2, 12)]
    sent = [item for call in calls[1:] for item in call]
    assert sent == list(range(2, 12))  # in submission order, each once
    assert len(calls) - 1 < 10 and max(len(c) for c in calls) <= 4


async def test_a_failed_call_fails_its_group_only() -> None:
    async def send(items: Sequence[str]) -> list[str]:
        await asyncio.sleep(0)
        if "bad" in items:
            raise ConnectionError("redis away")
        return list(items)

    coalescer: Coalescer[str, str] = Coalescer(send, limit=100)
    outcomes = await asyncio.gather(
        coalescer.submit("a"), coalescer.submit("bad"), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert await coalescer.submit("c") == "c"


async def test_a_cancelled_request_leaves_the_others_answered() -> None:
    release = asyncio.Event()

    async def send(items: Sequence[int]) -> list[int]:
        await release.wait()
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(send, limit=100)
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(coalescer.submit(2))
    third = asyncio.ensure_future(coalescer.submit(3))
    await asyncio.sleep(0)
    second.cancel()
    release.set()
    assert await first == 1 and await third == 3
    with pytest.raises(asyncio.CancelledError):
        await second


async def test_concurrent_events_reach_redis_in_fewer_script_calls(
    settings_factory: Callable[..., Settings], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Queue.for_web(settings_factory(sqlite_url)) as queue:
        calls: list[int] = []
        real = queue.enqueue_group

        async def counted(items: Sequence[object]) -> list[EnqueueResult]:
            calls.append(len(items))
            return await real(items)  # type: ignore[arg-type]

        monkeypatch.setattr(queue, "enqueue_group", counted)
        events = [queued_event("site", f"id-{n % 40}") for n in range(60)]
        results = await asyncio.gather(*(queue.enqueue_event(e, None) for e in events))
        # 40 distinct event_ids: the 20 repeats are duplicates, whichever group they were in.
        assert results.count(EnqueueResult.ACCEPTED) == 40
        assert results.count(EnqueueResult.DUPLICATE) == 20
        assert results[:40] == [EnqueueResult.ACCEPTED] * 40
        assert sum(calls) == 60 and len(calls) < 60
        stored = [
            decode_wire(m).event_id for m in await queue.redis.lrange(queue.keys.queue, 0, -1)
        ]
        assert sorted(stored) == sorted(f"id-{n}" for n in range(40))


async def test_a_batch_over_the_cap_is_refused_whole_and_requests_one_by_one(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    async with Queue.for_web(settings_factory(sqlite_url, MAX_QUEUE_LENGTH="3")) as queue:
        group = [(queued_event("site", f"id-{n}"), None) for n in range(4)]
        full = EnqueueResult.QUEUE_FULL
        assert await queue.enqueue_group(group, all_or_none=True) == [full] * 4
        assert await queue.length() == 0
        assert not await queue.redis.exists(queue.keys.seen("site", "id-0"))
        # Independent requests that arrived together: each fits or not on its own.
        accepted = [EnqueueResult.ACCEPTED] * 3
        assert await queue.enqueue_group(group) == [*accepted, full]
        assert await queue.length() == 3
        assert not await queue.redis.exists(queue.keys.seen("site", "id-3"))
