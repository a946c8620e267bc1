"""Logging for every command: one setup shared by ``analytics`` and ``python -m asyncworker``.

It lives below both packages so the worker's own entry point can use it without
importing the web app.
"""

from __future__ import annotations

import logging
import sys


def configure_logging() -> None:
    """Timestamped lines on stderr; alembic's per-plugin chatter kept out."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
