"""Developer sessions: serve, tests, lint, typing (and bench).

``nox`` with no arguments runs what CI runs: the whole suite on Flask 3, the tests that
exercise Flask again on Flask 2.3, the linters (ruff, and import-linter's layers
contract) and mypy.

Which tests run on Flask 2.3 (``pytest -m flask``; tests/conftest.py marks them): a test
runs there when Flask is on its path, that is when it lives in tests/webapp or
tests/browser (the web layer, the CLI built on it, the dashboard), when its module imports
from ``webapp`` (the package built on Flask), or when it requests the app in process (the
``client`` fixture). The worker, queue, storage, fault and cluster tests import neither
Flask nor ``webapp`` (where they start ``analytics web`` it only feeds them events, as
it does on Flask 3) and run once, on Flask 3, with everything else.

Both test sessions run on two processes (pytest-xdist, ``-n 2 --dist loadgroup``: the
tests that share a server started once run on one worker); pass ``-n 0`` after ``--``
to run in one process. ``-- --hypothesis-profile=thorough`` runs the property tests'
full example counts (tests/conftest.py).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def serve(session: nox.Session) -> None:
    """Install and run the whole system (embedded Redis + SQLite unless configured)."""
    session.install("-e", ".")
    session.run("analytics", "serve", *session.posargs)


# Two pytest-xdist workers: measured faster than one on the 2-core CI machine (README).
PARALLEL = ["-n", "2", "--dist", "loadgroup"]


@nox.session
@nox.parametrize("flask", ["3", "2.3"])
def tests(session: nox.Session, flask: str) -> None:
    """The suite against real Redis, MariaDB and SQLite on Flask 3; its Flask tests on 2.3."""
    session.install("-e", ".[test]")
    if flask == "2.3":
        # Flask 2.3 predates Werkzeug 3; pin both to that generation.
        session.install("flask[async]==2.3.3", "werkzeug==2.3.8")
        session.run("pytest", *PARALLEL, "-m", "flask", *session.posargs)
    else:
        session.install("flask[async]>=3,<4")
        session.run("pytest", *PARALLEL, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, and the layers contract: webapp on asyncworker on db, nothing imports upward."""
    session.install("ruff", "import-linter>=2.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The packages are read from the checkout, not installed.
    session.run("lint-imports", env={"PYTHONPATH": session.invoked_from})


@nox.session
def typing(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Stats benchmark on real Redis + MariaDB + worker/web processes (see tests/perf/bench.py).

    Sizes by flag or env, e.g. ``nox -s bench -- --big 200000 --small-per-site 4000``.
    """
    session.install("-e", ".[test]")
    session.run("python", "tests/perf/bench.py", *session.posargs)


@nox.session(name="bench-ingest")
def bench_ingest(session: nox.Session) -> None:
    """The edge against a bare ASGI ceiling, POST /events, tail latency and freshness
    (see tests/perf/bench_ingest.py). Needs the local Redis and MariaDB and wrk."""
    session.install("-e", ".[test]")
    session.run("python", "tests/perf/bench_ingest.py", *session.posargs)
