"""The read model: an SQLite index of every contract event, kept in step with the chain.

:class:`Indexer` reads events from the deployment block (raw ``eth_getLogs``, adaptive pages, fast
ABI-layout decoding), applies them to append-only tables, keeps a cursor (block number + hash) and
rolls back to the common ancestor when the chain reorganises. :class:`ReadModel` answers the
queries (current state and as-of a block or time). See docs/index.md.
"""

from ledger_api.index._indexer import Indexer, PollStats, connect
from ledger_api.index._models import (
    AgencyView,
    AlertView,
    AnchorKind,
    AnchorView,
    DecisionEventView,
    DeclarationStatus,
    DeclarationView,
    EventRecord,
    KeyView,
    StampView,
    SupportingDocumentView,
)
from ledger_api.index._queries import ReadModel

__all__ = [
    "AgencyView",
    "AlertView",
    "AnchorKind",
    "AnchorView",
    "DecisionEventView",
    "DeclarationStatus",
    "DeclarationView",
    "EventRecord",
    "Indexer",
    "KeyView",
    "PollStats",
    "ReadModel",
    "StampView",
    "SupportingDocumentView",
    "connect",
]
