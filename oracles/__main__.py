"""``python -m oracles <name> [run|status|…]``: run one oracle, or ask about it."""

from __future__ import annotations

import sys

from oracles.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
