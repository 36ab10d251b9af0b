"""Process-wide guards the service and the CLI apply at start-up."""

from __future__ import annotations

import sys

__all__ = ["SAFE_RECURSION_LIMIT", "bound_recursion"]

#: Recursion limit of our processes: deep enough for every library we use, shallow enough that
#: deeply nested input raises RecursionError instead of overflowing the C stack.
SAFE_RECURSION_LIMIT = 2000


def bound_recursion() -> None:
    """Undo py_ecc's import-time ``sys.setrecursionlimit(100000)`` (it comes with web3 / eth-account).

    With that limit a request body of JSON nested a few hundred thousand levels deep overflows the
    C stack inside ``json.loads`` and kills the whole process (SIGSEGV) instead of raising
    ``RecursionError``. py_ecc is imported first so its import cannot raise the limit again later.
    """
    try:
        import py_ecc  # noqa: F401, PLC0415
    except ImportError:  # pragma: no cover - py_ecc is a dependency of eth-account
        pass
    if sys.getrecursionlimit() > SAFE_RECURSION_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)
