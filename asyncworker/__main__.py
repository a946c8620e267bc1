"""``python -m asyncworker`` is ``analytics worker``, without loading the web app."""

from __future__ import annotations

import sys

from asyncworker.cli import main

if __name__ == "__main__":
    sys.exit(main())
