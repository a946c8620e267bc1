"""``analytics dead-letters``: see, requeue or purge the messages the worker refused."""

from __future__ import annotations

import base64
from typing import cast

import orjson
from redis.asyncio import Redis

from asyncworker.protocol import REQUEUE_LUA, QueueKeys
from db.settings import Settings


def raw_of(entry: dict[str, str]) -> bytes:
    if "raw_base64" in entry:
        return base64.b64decode(entry["raw_base64"])
    return entry.get("raw", "").encode("utf-8")


async def dead_letters_command(
    settings: Settings, *, requeue: bool, purge: bool, limit: int
) -> int:
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    keys = QueueKeys(settings.queue_name)
    try:
        entries = cast("list[bytes]", await redis.lrange(keys.dead, 0, -1))
        if purge:
            removed = 0
            for entry in entries:
                removed += int(await redis.lrem(keys.dead, 1, entry))  # type: ignore[arg-type]
            print(f"purged {removed} dead letter(s)")
            return 0
        if requeue:
            moved = 0
            for entry in reversed(entries):  # oldest first, so the queue keeps their order
                try:
                    raw = raw_of(orjson.loads(entry))
                except (orjson.JSONDecodeError, ValueError, AttributeError):
                    print(f"skipped an unreadable dead letter: {entry[:120]!r}")
                    continue
                moved += int(await redis.eval(REQUEUE_LUA, 2, keys.dead, keys.queue, entry, raw))
            print(f"requeued {moved} dead letter(s) onto {keys.queue!r}")
            return 0
        print(f"{len(entries)} dead letter(s) on {keys.queue!r}")
        for entry in entries[:limit]:
            try:
                data = orjson.loads(entry)
                data.get("at")
            except (orjson.JSONDecodeError, AttributeError):
                data = {"reason": "unreadable dead letter", "raw": entry.decode("utf-8", "replace")}
            shown = raw_of(data)[:200].decode("utf-8", "replace")
            print(f"{data.get('at', '?')}  {data.get('reason', '?')}  {shown}")
        return 0
    finally:
        await redis.aclose()
