"""The ``analytics`` command: serve, web, worker, init-db, dead-letters, rebuild-rollups.

Configuration problems are reported as one ``error:`` line and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date

from asyncworker.cli import guarded, run_worker
from asyncworker.cli import run_coroutine as _run
from db.settings import Settings


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
    """The worker's own entry point (:mod:`asyncworker.cli`) does the work."""
    return run_worker(settings, check_only=args.check)


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.serve import run_web

    settings.require_secret_key()
    settings.require_redis()
    return run_web(settings, workers=args.workers, host=args.host, port=args.port)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from webapp.serve import run_all

    return run_all(settings, port=args.port, workers=args.workers)


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from asyncworker.deadletters import dead_letters_command

    result: int = _run(
        dead_letters_command(settings, requeue=args.requeue, purge=args.purge, limit=args.limit)
    )
    return result


def cmd_rebuild_rollups(settings: Settings, args: argparse.Namespace) -> int:
    if args.start is not None and args.end is not None and args.end < args.start:
        print("error: --from must not be after --to", file=sys.stderr)
        return 2
    return _run(_rebuild_with_progress(settings, args.site, args.start, args.end))


async def _rebuild_with_progress(
    settings: Settings, site: str | None, start: date | None, end: date | None
) -> int:
    """:func:`db.rebuild.rebuild` with a rich progress bar (site-days done, events recounted)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from db.engine import create_engine
    from db.rebuild import rebuild

    engine = create_engine(settings, pool_size=2)
    progress = Progress(
        TextColumn("[bold]rebuilding rollups"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("site-days"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[current]}"),
        console=Console(stderr=True),
    )
    task = progress.add_task("rebuild", total=None, current="planning…")

    def planned(total: int) -> None:
        progress.update(task, total=total, current="")

    def done(s: str, day: date, n: int) -> None:
        progress.update(task, advance=1, current=f"{s} {day.isoformat()}: {n} events")

    try:
        with progress:
            report = await rebuild(
                engine, site=site, start=start, end=end, on_plan=planned, on_day=done
            )
    finally:
        await engine.dispose()
    print(
        f"Rebuilt {report.site_days} site-day(s) of {len(report.sites)} site(s) "
        f"from {report.events} event(s)."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analytics", description="Self-hosted event analytics: ingestion, worker and stats."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run web + worker together (embedded Redis/SQLite if unset)")
    p.add_argument("--port", type=int, default=None, help="port (default FLASK_PORT or 5000)")
    p.add_argument("--workers", type=int, default=1, help="Hypercorn worker processes")
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

    from webapp.accounts_cli import add_parsers

    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda settings: int(args.func(settings, args)))


if __name__ == "__main__":
    sys.exit(main())
