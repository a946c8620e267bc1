"""Concurrent enqueues share Redis round trips: what is waiting when a call returns goes next.

The web edge answers each ``POST /event`` only once its event is in Redis. Under load,
many requests of one process want to enqueue at the same moment; a :class:`Coalescer`
sends them as one group (one script call for all of them) and gives each request its own
result back. A request that arrives alone is sent at once, on the loop's next turn: there
is no timer, the group is simply what accumulated while the previous call was in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Groups items submitted concurrently into calls of ``send`` (at most ``limit`` each).

    ``send`` gets the items in submission order and returns one result per item; if it
    raises, every item of that group gets the exception. One group is in flight at a time,
    so a group's items reach Redis after those of every earlier group.
    """

    def __init__(
        self, send: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]], limit: int
    ) -> None:
        self._send = send
        self._limit = limit
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        """Send groups until nothing waits (a task of its own, so that a cancelled
        request never leaves the others of its group without an answer)."""
        try:
            while self._pending:
                group = self._pending[: self._limit]
                del self._pending[: self._limit]
                try:
                    results = await self._send([item for item, _ in group])
                except BaseException as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._task = None
            for _, future in self._pending:  # only when cancelled mid-way
                if not future.done():
                    future.set_exception(RedisConnectionError("the enqueue was cancelled"))
            self._pending.clear()
