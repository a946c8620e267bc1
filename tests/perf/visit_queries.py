"""The benchmark's visitor and visit reads: db/visit_stats.py against the plain-SQL reference.

Each read (the aggregate and every breakdown property, plus two props keys) is timed in
process on the database layer (p50/p95 of ``runs`` calls, a fresh session each, as a
request gets), then the reference of tests/reference_sql.py is run ``raw_runs`` times
for the listed reads (all of them for small sites; a few for the big site-day, where
each takes seconds) and the answers compared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import visit_stats
from db.stats import Period
from tests import reference_sql

PROPS = ["props:plan", "props:button"]
# The reads also run in plain SQL on the big site-day (each takes seconds there).
BIG_RAW_READS = {"aggregate", "page", "source", "exit_page", "browser_version", "props:plan"}
Read = Callable[[AsyncSession], Awaitable[Any]]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "runs": len(ordered),
    }


def _reads(site: str, period: Period) -> dict[str, tuple[Read, Read]]:
    out: dict[str, tuple[Read, Read]] = {
        "aggregate": (
            lambda s: visit_stats.aggregate(s, site, period),
            lambda s: reference_sql.raw_aggregate(s, site, period, 0),
        )
    }
    for prop in [*visit_stats.PROPERTIES, *PROPS]:
        out[prop] = (
            lambda s, p=prop: visit_stats.breakdown(s, site, period, p, 10),  # type: ignore[misc]
            lambda s, p=prop: reference_sql.raw_breakdown(s, site, period, p, 10),  # type: ignore[misc]
        )
    return out


async def _timed(engine: AsyncEngine, read: Read, runs: int) -> tuple[Any, list[float]]:
    samples, body = [], None
    for _ in range(runs):
        async with AsyncSession(engine) as session:
            t0 = time.perf_counter()
            body = await read(session)
            samples.append(time.perf_counter() - t0)
    return body, samples


async def time_visit_reads(
    engine: AsyncEngine,
    site: str,
    period: Period,
    runs: int,
    raw_runs: int,
    raw_only: set[str] | None,
) -> list[dict[str, Any]]:
    """One row per read: its p50/p95, the reference's (where run) and whether they agree."""
    table = []
    for name, (read, raw) in _reads(site, period).items():
        await _timed(engine, read, 3)  # warm-up
        body, samples = await _timed(engine, read, runs)
        row: dict[str, Any] = {"read": name, "rollups": percentiles(samples)}
        if raw_only is None or name in raw_only:
            want, raw_samples = await _timed(engine, raw, raw_runs)
            if name == "aggregate":
                want["bots"] = body["bots"]  # bots' events are not stored: no SQL reference
            row["raw"], row["equal"] = percentiles(raw_samples), body == want
        table.append(row)
        print(f"  {site} {period.start}..{period.end} {name}: {row}", flush=True)
    return table


async def visit_reads(
    database_url: str, big: str, small: str, day: date, month: Period, args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    """The reads on the big site-day, a small site-day and a small site's month."""
    from db.engine import create_engine
    from db.settings import load_settings

    settings = load_settings(environ={"DATABASE_URL": database_url}, dotenv_path=None)
    engine = create_engine(settings)
    one = Period(day, day)
    try:
        return {
            "big site-day": await time_visit_reads(
                engine, big, one, args.runs, args.raw_big_runs, BIG_RAW_READS
            ),
            "small site-day": await time_visit_reads(
                engine, small, one, args.runs, args.raw_runs, None
            ),
            "small site 30-day range": await time_visit_reads(
                engine, small, month, args.runs, args.raw_runs, None
            ),
        }
    finally:
        await engine.dispose()


def report_visit_reads(results: dict[str, Any]) -> None:
    print("| visit read | rollups p50 | rollups p95 | raw SQL p50 | equal |")
    print("|---|---|---|---|---|")
    for scope, rows in results.get("visit_reads", {}).items():
        for row in rows:
            raw = row.get("raw")
            raw_p50 = f"{raw['p50_ms']} ms (n={raw['runs']})" if raw else "-"
            a = row["rollups"]
            print(
                f"| {scope}: {row['read']} | {a['p50_ms']} ms | {a['p95_ms']} ms | {raw_p50} "
                f"| {row.get('equal', '-')} |"
            )
    print()
