"""How an exception is named in a log line, an error message or a dead letter.

Driver errors can span many lines (SQL, parameters, a server's backtrace), and a
log line per failure must stay one line: every place that reports an exception
to a person goes through :func:`describe`.
"""

from __future__ import annotations

DESCRIBE_MAX = 300


def describe(exc: BaseException, limit: int = DESCRIBE_MAX) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters.

    For SQLAlchemy's wrapped driver errors the driver's own error (``exc.orig``) is
    the informative part, and is used when present.
    """
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).splitlines()
    first = lines[0] if lines else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text[:limit]
