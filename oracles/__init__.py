"""Long-running oracles: the agencies' automated officers.

Each is runnable as ``python -m oracles <name>`` and ``ledger oracle <name>``; all share the run
loop, persisted state, journal and health endpoint of :mod:`oracles._base`:

========== ===================================================================================
integrity  fetch every anchored document from the agency stores, verify CID + commitment, alert
risk       assign the selectivity channel of accepted declarations from an anchored rule set
bridge     relay a partner administration's EIP-712-signed stamps from its feed (HTTP / drop)
replication keep every anchored CID pinned on at least k agency IPFS nodes, report the others
witness    sign periodic checkpoints (block hash + event accumulator); compare them across agencies
========== ===================================================================================

Oracles import the ``ledger_api`` library (chain client, content stores, index, verifier) and
never ``ledger_api.api``.
"""

from __future__ import annotations

__all__ = ["ORACLES"]

#: oracle name -> module defining ``ORACLE`` (an :class:`oracles._base.Oracle` subclass) and,
#: optionally, ``add_commands(actions)`` for extra sub-commands.
ORACLES: dict[str, str] = {
    "integrity": "oracles.integrity",
    "risk": "oracles.risk",
    "bridge": "oracles.bridge",
    "replication": "oracles.replication",
    "witness": "oracles.witness",
}
