"""The worker's own entry point: ``python -m asyncworker [--check]``.

``analytics worker`` delegates here, and this module imports nothing of the web
app, so a worker process (or a process manager's health check) never loads Flask.
Configuration problems are one ``error:`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from asyncworker.queue import Queue, Role
from db.errors import describe
from db.logs import configure_logging
from db.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


async def heartbeat_status(settings: Settings) -> dict[str, Any]:
    """Live workers and the age of the oldest heartbeat, with a quick-failing client."""
    async with Queue.for_role(settings, Role.CHECK) as queue:
        return await queue.read_heartbeats()


def check(settings: Settings) -> int:
    """Exit status for process managers: 0 while some worker's heartbeat is fresh."""
    state = run_coroutine(heartbeat_status(settings))
    if state["alive"]:
        print(
            f"ok: {state['workers']} worker(s) alive, oldest heartbeat "
            f"{state['oldest_heartbeat_age_s']} s old"
        )
        return 0
    print("unhealthy: no worker heartbeat on queue " + repr(settings.queue_name))
    return 1


def run_worker(settings: Settings, *, check_only: bool = False) -> int:
    """Run the worker daemon (or only check heartbeats); the process's exit status."""
    settings.require_redis()
    if check_only:
        return check(settings)
    from asyncworker.worker import StartupError, serve_worker

    try:
        code: int = run_coroutine(serve_worker(settings))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m asyncworker", description="Run the asyncio worker daemon."
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 0 if a worker heartbeat is fresh"
    )
    return parser


def guarded(command: Callable[[Settings], int]) -> int:
    """Load the settings and run ``command``, turning the usual failures into one line.

    Shared with ``analytics``, so both entry points report alike; logging is set up
    here, once the settings (``LOG_FORMAT``) are known to be valid.
    """
    try:
        settings = load_settings()
        configure_logging(settings.log_format)
        return command(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, RedisError, OSError) as exc:
        # A server that is down or refuses us: one line, not a traceback.
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda settings: run_worker(settings, check_only=args.check))
