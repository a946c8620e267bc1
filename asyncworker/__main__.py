"""``python -m asyncworker`` is ``analytics worker``."""

from __future__ import annotations

import sys

from webapp.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
