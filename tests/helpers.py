"""Waiting for something to happen, the one way every suite does it.

Real processes and real services answer when they answer: tests poll with a
deadline and fail with what they were waiting for (never a fixed sleep, never a
timed assertion).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hypothesis

T = TypeVar("T")

# The example count of the ``thorough`` profile (tests/conftest.py), Hypothesis' default.
THOROUGH_EXAMPLES = 100


def examples(full: int) -> int:
    """An expensive property test's example count under the loaded Hypothesis profile:
    ``full`` under ``thorough``, a quarter of it (rounded up) under ``ci``, the default.

    Read when the test module is imported, which is after ``--hypothesis-profile`` has
    loaded its profile."""
    scale = hypothesis.settings.default.max_examples / THOROUGH_EXAMPLES
    return max(1, math.ceil(full * scale))


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    step: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (),
) -> tuple[bool, T | None, float]:
    """Call ``fetch`` until ``done(value)``; returns (done, last value, seconds taken).

    Exceptions of the types in ``retry_on`` count as "not yet" (their instance is
    the last value); any other exception propagates.
    """
    started = time.monotonic()
    last: Any = None
    while True:
        try:
            last = fetch()
            if done(last):
                return True, last, time.monotonic() - started
        except retry_on as exc:
            last = exc
        if time.monotonic() - started > timeout:
            return False, last, time.monotonic() - started
        time.sleep(step)


def poll(fetch: Callable[[], Any], expected: Any, timeout: float = 20) -> Any:
    """Call ``fetch`` until it returns ``expected`` (the last value is returned either way)."""
    _, last, _ = poll_until(fetch, lambda value: bool(value == expected), timeout)
    return last


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.2) -> float:
    """Poll ``check`` until true; returns the seconds it took, fails with ``what`` otherwise."""
    ok, _, took = poll_until(check, bool, timeout, step)
    if not ok:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return took


def wait_for(
    fn: Callable[[], Any],
    timeout: float = 20.0,
    interval: float = 0.25,
    retry_on: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``fn`` until it returns something truthy; return it, or fail after ``timeout``."""
    ok, last, _ = poll_until(fn, bool, timeout, interval, retry_on)
    if not ok:
        raise AssertionError(f"timed out after {timeout}s; last value: {last!r}")
    return last


def queued_event(site_id: str = "site", event_id: str | None = None, user_id: str | None = None):  # type: ignore[no-untyped-def]
    """A minimal validated event for the queue's own tests (sent without a visit)."""
    from datetime import datetime, timezone

    from db.event import Event

    return Event(site_id, "pageview", "/", user_id, datetime.now(timezone.utc), event_id)
