"""Customs document-provenance ledger: the Python library behind the API, CLI and oracles.

The public surface is deliberately small; see ``docs/architecture.md`` for the module map.
"""

from ledger_api.errors import LedgerError

__all__ = ["LedgerError", "__version__"]

__version__ = "0.1.0"
