"""The ``analytics`` command: serve, web, worker, init-db, dead-letters.

Configuration problems are reported as one ``error:`` line and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from datetime import date
from typing import Any, TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from db.errors import describe
from db.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_init_db(settings: Settings, _args: argparse.Namespace) -> int:
    from db.engine import create_engine
    from db.schema import init_db

    async def go() -> None:
        engine = create_engine(settings)
        try:
            await init_db(engine)
        finally:
            await engine.dispose()

    _run(go())
    print("Tables created!")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from asyncworker.worker import StartupError, heartbeat_status, serve_worker

    if args.check:
        state: dict[str, object] = _run(heartbeat_status(settings))
        if state["alive"]:
            print(
                f"ok: {state['workers']} worker(s) alive, oldest heartbeat "
                f"{state['oldest_heartbeat_age_s']} s old"
            )
            return 0
        print("unhealthy: no worker heartbeat on queue " + repr(settings.queue_name))
        return 1
    try:
        code: int = _run(serve_worker(settings))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.serve import run_web

    return run_web(settings, workers=args.workers, host=args.host, port=args.port)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.serve import run_all

    return run_all(settings, port=args.port)


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from asyncworker.deadletters import dead_letters_command

    result: int = _run(
        dead_letters_command(settings, requeue=args.requeue, purge=args.purge, limit=args.limit)
    )
    return result


def cmd_rebuild_rollups(settings: Settings, args: argparse.Namespace) -> int:
    from db.rebuild import rebuild_command

    return _run(rebuild_command(settings, args.site, args.start, args.end))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analytics", description="Self-hosted event analytics: ingestion, worker and stats."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run web + worker together (embedded Redis/SQLite if unset)")
    p.add_argument("--port", type=int, default=None, help="port (default FLASK_PORT or 5000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("web", help="serve the API and dashboard with Hypercorn on uvloop")
    p.add_argument("--workers", type=int, default=1, help="Hypercorn worker processes")
    p.add_argument("--host", default=None, help="bind address (default FLASK_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default FLASK_PORT)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("worker", help="run the asyncio worker daemon")
    p.add_argument("--check", action="store_true", help="exit 0 if a worker heartbeat is fresh")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("init-db", help="create or upgrade the tables (idempotent)")
    p.set_defaults(func=cmd_init_db)

    p = sub.add_parser("dead-letters", help="list, requeue or purge refused queue messages")
    p.add_argument("--requeue", action="store_true", help="push them back onto the queue")
    p.add_argument("--purge", action="store_true", help="delete them")
    p.add_argument("--limit", type=int, default=100, help="how many to list (default 100)")
    p.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser("rebuild-rollups", help="recompute the stats aggregates from the events")
    p.add_argument("--site", default=None, help="only this site_id (default: every site)")
    day = date.fromisoformat
    p.add_argument("--from", dest="start", type=day, default=None, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=day, default=None, help="last day, YYYY-MM-DD")
    p.set_defaults(func=cmd_rebuild_rollups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        settings = load_settings()
        return int(args.func(settings, args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, RedisError, OSError) as exc:
        # A server that is down or refuses us: one line, not a traceback.
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
