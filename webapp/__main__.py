"""``python -m webapp`` is ``analytics web``."""

from __future__ import annotations

import sys

from webapp.cli import main

if __name__ == "__main__":
    sys.exit(main(["web", *sys.argv[1:]]))
