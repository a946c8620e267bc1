"""``analytics dead-letters``: see, requeue or purge the messages the worker refused.

Every shard of ``QUEUE_SHARDS`` has its own dead-letter list; a requeued message goes
back onto the queue of the shard it died on, which its workers serve.
"""

from __future__ import annotations

import base64

import orjson

from asyncworker.queue import Queue
from db.settings import Settings


def raw_of(entry: dict[str, str]) -> bytes:
    if "raw_base64" in entry:
        return base64.b64decode(entry["raw_base64"])
    return entry.get("raw", "").encode("utf-8")


async def _requeue(queue: Queue, entries: list[bytes]) -> int:
    moved = 0
    for entry in reversed(entries):  # oldest first, so the queue keeps their order
        try:
            raw = raw_of(orjson.loads(entry))
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            print(f"skipped an unreadable dead letter: {entry[:120]!r}")
            continue
        moved += await queue.requeue(entry, raw)
    return moved


def _show(entries: list[bytes]) -> None:
    for entry in entries:
        try:
            data = orjson.loads(entry)
            data.get("at")
        except (orjson.JSONDecodeError, AttributeError):
            data = {"reason": "unreadable dead letter", "raw": entry.decode("utf-8", "replace")}
        shown = raw_of(data)[:200].decode("utf-8", "replace")
        print(f"{data.get('at', '?')}  {data.get('reason', '?')}  {shown}")


async def dead_letters_command(
    settings: Settings, *, requeue: bool, purge: bool, limit: int
) -> int:
    async with Queue.for_cli(settings) as root:
        shards = root.shards()
        per_shard = [(queue, await queue.dead_letters()) for queue in shards]
        if purge:
            removed = sum([await queue.purge(entries) for queue, entries in per_shard])
            print(f"purged {removed} dead letter(s)")
            return 0
        where = repr(root.keys.queue) + (f" ({len(shards)} shards)" if len(shards) > 1 else "")
        if requeue:
            moved = sum([await _requeue(queue, entries) for queue, entries in per_shard])
            print(f"requeued {moved} dead letter(s) onto {where}")
            return 0
        total = sum(len(entries) for _, entries in per_shard)
        print(f"{total} dead letter(s) on {where}")
        _show([entry for _, entries in per_shard for entry in entries][:limit])
        return 0
