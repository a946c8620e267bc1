"""``analytics dead-letters``: see, requeue or purge the messages the worker refused."""

from __future__ import annotations

import base64

import orjson

from asyncworker.queue import Queue
from db.settings import Settings


def raw_of(entry: dict[str, str]) -> bytes:
    if "raw_base64" in entry:
        return base64.b64decode(entry["raw_base64"])
    return entry.get("raw", "").encode("utf-8")


async def dead_letters_command(
    settings: Settings, *, requeue: bool, purge: bool, limit: int
) -> int:
    async with Queue.for_cli(settings) as queue:
        keys = queue.keys
        entries = await queue.dead_letters()
        if purge:
            removed = await queue.purge(entries)
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
                moved += await queue.requeue(entry, raw)
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
