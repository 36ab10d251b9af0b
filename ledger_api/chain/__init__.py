"""Everything that talks to the EVM: the only package that imports web3.

Public surface: :class:`ContractArtifact` / :func:`load_artifact` (committed ABI + bytecode),
:class:`AnvilNode` (the supervised embedded node), :func:`deploy_consortium` and
:class:`Deployment` (deploy + bootstrap + the on-disk deployment record), :func:`decode_revert`
(custom-error revert data → :class:`ledger_api.errors.ContractRevert`).
"""

from ledger_api.chain.artifacts import ContractArtifact, load_artifact
from ledger_api.chain.deploy import Deployment, deploy_consortium, ensure_deployed
from ledger_api.chain.node import AnvilNode
from ledger_api.chain.reverts import decode_revert

__all__ = [
    "AnvilNode",
    "ContractArtifact",
    "Deployment",
    "decode_revert",
    "deploy_consortium",
    "ensure_deployed",
    "load_artifact",
]
