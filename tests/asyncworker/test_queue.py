"""The exactly-once invariants of the queue's scripts, against the Queue on real Redis.

The worker tests drive these through consumers and janitors; here each script's
guarantee is pinned down alone, so a change to a ``.lua`` file that breaks one shows
up as exactly that broken promise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from asyncworker.keys import VISIT_STATE_TTL_S, batch_id_of, new_batch_marker
from asyncworker.queue import AdoptResult, Arrival, EnqueueResult, Queue
from db.event import decode_wire
from db.settings import Settings
from tests.helpers import queued_event

WORKER = "host-1-abcd"
REGISTRATION = b'{"consumers": ["host-1-abcd:0"]}'


@pytest.fixture
async def queue(settings_factory: Callable[..., Settings], sqlite_url: str) -> AsyncIterator[Queue]:
    q = Queue.for_worker(settings_factory(sqlite_url))
    yield q
    await q.close()


async def test_enqueue_accepts_and_counts_an_event(queue: Queue) -> None:
    event = queued_event("site", None)
    assert await queue.enqueue(event, None) is EnqueueResult.ACCEPTED
    assert await queue.enqueue(event, None) is EnqueueResult.ACCEPTED  # no event_id
    assert await queue.redis.lrange(queue.keys.queue, 0, -1) == [event.to_wire()] * 2
    assert await queue.live_counts(5, "site") == (2, 2)
    assert await queue.live_counts(5, None) == (2, 2)


async def test_a_repeated_event_id_is_a_duplicate_within_its_ttl(queue: Queue) -> None:
    assert await queue.enqueue(queued_event("site", "id-1"), None) is EnqueueResult.ACCEPTED
    assert await queue.enqueue(queued_event("site", "id-1"), None) is EnqueueResult.DUPLICATE
    assert await queue.enqueue(queued_event("other-site", "id-1"), None) is EnqueueResult.ACCEPTED
    assert await queue.length() == 2
    ttl = await queue.redis.ttl(queue.keys.seen("site", "id-1"))
    assert 0 < ttl <= 24 * 3600
    assert (await queue.live_counts(5, "site")).received == 1


async def test_a_full_queue_refuses_and_pushes_nothing(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    async with Queue.for_web(settings_factory(sqlite_url, MAX_QUEUE_LENGTH="2")) as queue:
        for _ in range(2):
            assert await queue.enqueue(queued_event("site", None), None) is EnqueueResult.ACCEPTED
        assert await queue.enqueue(queued_event("site", "id-2"), None) is EnqueueResult.QUEUE_FULL
        assert await queue.length() == 2
        assert await queue.live_counts(5, "site") == (2, 2)
        # The refused event_id was not remembered: once there is room it is accepted.
        assert not await queue.redis.exists(queue.keys.seen("site", "id-2"))
        await queue.redis.rpop(queue.keys.queue)
        assert await queue.enqueue(queued_event("site", "id-2"), None) is EnqueueResult.ACCEPTED


async def test_claim_seals_a_list_once_and_a_second_claim_sees_the_same_marker(
    queue: Queue,
) -> None:
    inflight = queue.keys.inflight("c0")
    await queue.redis.lpush(inflight, b"e1", b"e2")  # a leftover list, no marker yet
    first = await queue.claim(inflight, WORKER, REGISTRATION)
    assert first[:-1] == [b"e2", b"e1"]
    assert batch_id_of(first[-1]) is not None
    second = await queue.claim(inflight, WORKER, REGISTRATION)
    assert second == first
    empty = queue.keys.inflight("c1")
    sealed = await queue.claim(empty, WORKER, REGISTRATION)
    assert len(sealed) == 1 and batch_id_of(sealed[0]) is not None
    assert await queue.claim(empty, WORKER, REGISTRATION) == sealed


async def test_finish_acknowledges_only_while_the_list_ends_with_our_marker(
    queue: Queue,
) -> None:
    inflight, mine = queue.keys.inflight("owner"), queue.keys.inflight("janitor")
    [marker] = await queue.claim(inflight, WORKER, REGISTRATION)
    await queue.redis.lpush(inflight, b"e1")
    await queue.redis.rename(inflight, mine)  # adopted by a janitor
    await queue.redis.lpush(inflight, b"e2")  # the owner moved one more meanwhile
    assert await queue.finish(inflight, marker, [b"dead"]) is False
    assert await queue.redis.lrange(inflight, 0, -1) == [b"e2"]
    assert await queue.redis.lrange(mine, 0, -1) == [b"e1", marker]
    assert await queue.dead_letter_count() == 0
    assert await queue.finish(mine, marker, [b"dead"]) is True
    assert not await queue.exists(mine)
    assert await queue.dead_letters() == [b"dead"]


async def test_adopt_waits_for_the_owner_to_die_and_the_adopter_to_be_free(
    queue: Queue,
) -> None:
    orphan, mine = queue.keys.inflight("dead:0"), queue.keys.inflight("janitor")
    heartbeat = queue.keys.heartbeat("dead")
    await queue.redis.rpush(orphan, new_batch_marker())
    await queue.redis.lpush(orphan, b"e1")
    await queue.beat("dead", REGISTRATION, b"{}", 60_000)
    assert await queue.adopt(orphan, heartbeat, mine) is AdoptResult.OWNER_ALIVE
    await queue.drop_heartbeat("dead")
    await queue.redis.rpush(mine, b"our own batch")
    assert await queue.adopt(orphan, heartbeat, mine) is AdoptResult.ADOPTER_BUSY
    assert await queue.redis.llen(orphan) == 2
    await queue.delete(mine)
    assert await queue.adopt(orphan, heartbeat, mine) is AdoptResult.ADOPTED
    assert await queue.redis.llen(mine) == 2 and not await queue.exists(orphan)
    assert await queue.adopt(orphan, heartbeat, mine) is AdoptResult.ADOPTER_BUSY
    await queue.delete(mine)
    assert await queue.adopt(orphan, heartbeat, mine) is AdoptResult.NOTHING


async def test_forget_keeps_a_worker_that_lives_or_still_owns_a_list(queue: Queue) -> None:
    await queue.beat(WORKER, REGISTRATION, b"{}", 60_000)
    assert await queue.forget(WORKER, ["c0", "c1"]) is False  # heartbeat alive
    await queue.drop_heartbeat(WORKER)
    await queue.redis.lpush(queue.keys.inflight("c1"), b"e1")
    assert await queue.forget(WORKER, ["c0", "c1"]) is False  # owns a list
    assert WORKER in await queue.registered()
    await queue.delete(queue.keys.inflight("c1"))
    assert await queue.forget(WORKER, ["c0", "c1"]) is True
    assert WORKER not in await queue.registered()


async def test_requeue_moves_one_dead_letter_once_even_if_called_twice(queue: Queue) -> None:
    entry = b'{"reason": "bad", "raw": "e1"}'
    await queue.redis.lpush(queue.keys.dead, entry, entry)  # the same entry, twice
    moved = await asyncio.gather(*(queue.requeue(entry, b"e1") for _ in range(3)))
    assert sorted(moved) == [False, True, True]
    assert await queue.redis.lrange(queue.keys.queue, 0, -1) == [b"e1", b"e1"]
    assert await queue.dead_letter_count() == 0
    assert await queue.requeue(entry, b"e1") is False
    assert await queue.length() == 2


async def test_move_takes_the_oldest_first_and_registers_a_dropped_worker_again(
    queue: Queue,
) -> None:
    await queue.redis.lpush(queue.keys.queue, b"e1", b"e2", b"e3")  # e1 is the oldest
    inflight = queue.keys.inflight("c0")
    assert await queue.move(inflight, 2, WORKER, REGISTRATION) == [b"e1", b"e2"]
    assert await queue.registered() == {WORKER: {"consumers": ["host-1-abcd:0"]}}
    await queue.redis.hdel(queue.keys.workers, WORKER)  # a janitor dropped it
    assert await queue.move(inflight, 5, WORKER, REGISTRATION) == [b"e3"]
    assert await queue.redis.hget(queue.keys.workers, WORKER) == REGISTRATION
    assert await queue.move(inflight, 5, WORKER, REGISTRATION) == []
    assert await queue.redis.lrange(inflight, 0, -1) == [b"e3", b"e2", b"e1"]
    assert await queue.blmove(inflight, 0.05) is None


async def test_heartbeats_are_read_from_their_remaining_ttl(queue: Queue) -> None:
    assert (await queue.read_heartbeats())["alive"] is False
    await queue.beat(WORKER, REGISTRATION, b"{}", 3_000)
    state = await queue.read_heartbeats()
    assert state["alive"] is True and state["workers"] == 1 and state["registered"] == 1
    assert 0 <= state["oldest_heartbeat_age_s"] < 1
    await queue.drop_heartbeat(WORKER)
    assert await queue.read_heartbeats() == {
        "workers": 0,
        "registered": 1,
        "oldest_heartbeat_age_s": None,
        "alive": False,
    }


# ---------------------------------------------------------------- sessionizing


def _arrival(visitor: str = "a" * 32, earlier: str | None = None) -> Arrival:
    return Arrival(visitor, earlier, "address\0agent", {"source": "Google"})


async def test_a_visit_advances_only_for_queued_events(
    settings_factory: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = settings_factory(sqlite_url, MAX_QUEUE_LENGTH="1")
    async with Queue.for_web(settings) as queue:
        event = queued_event("site", None)
        assert await queue.enqueue(event, _arrival()) is EnqueueResult.ACCEPTED
        state_key = queue.keys.visit("site", "a" * 32)
        state = await queue.redis.hgetall(state_key)
        assert state[b"n"] == b"1" and state[b"entry"] == b"p/"
        assert 0 < await queue.redis.pttl(state_key) <= VISIT_STATE_TTL_S * 1000
        # The queue is full: refused, and the visit is exactly as it was.
        assert await queue.enqueue(event, _arrival()) is EnqueueResult.QUEUE_FULL
        assert await queue.redis.hgetall(state_key) == state
        (raw,) = await queue.redis.lrange(queue.keys.queue, 0, -1)
        visit = decode_wire(raw).visit
        assert visit is not None and visit.seq == 1 and visit.dims == {"source": "Google"}


async def test_yesterdays_visit_is_continued_and_todays_wins(queue: Queue) -> None:
    first = queued_event("site", None)
    assert await queue.enqueue(first, _arrival("b" * 32)) is EnqueueResult.ACCEPTED
    # Under a new day's id the visitor's open visit (under yesterday's id) continues.
    assert await queue.enqueue(first, _arrival("c" * 32, "b" * 32)) is EnqueueResult.ACCEPTED
    # Once today's id has a visit, yesterday's is not looked at.
    assert await queue.enqueue(first, _arrival("d" * 32)) is EnqueueResult.ACCEPTED
    assert await queue.enqueue(first, _arrival("d" * 32, "b" * 32)) is EnqueueResult.ACCEPTED
    raws = await queue.redis.lrange(queue.keys.queue, 0, -1)
    one, two, three, four = (decode_wire(raw).visit for raw in reversed(raws))
    assert one and two and three and four
    assert (two.id, two.seq, two.visitor) == (one.id, 2, "b" * 32)
    assert three.id != one.id and three.seq == 1 and three.visitor == "d" * 32
    assert (four.id, four.seq, four.visitor) == (three.id, 2, "d" * 32)
