"""The HTTP service (FastAPI): a thin shell over the library. Build it with :func:`create_app`."""

from ledger_api.api.app import create_app
from ledger_api.api.problems import Problem, problem_for

__all__ = ["Problem", "create_app", "problem_for"]
