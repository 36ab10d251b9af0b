"""Shared by the chain benchmarks: a fresh anvil with the default consortium, a large valid event
history generated quickly, and web3's own event decoders (the baseline the benchmarks compare with).

Transactions are signed in-process with coincurve (``FastSigner``), sent in JSON-RPC batches with
automine off, and mined in large blocks. A third each: alerts raised by the consortium auditor,
batch anchors by an inspection agency, declarations with two supporting documents by a trader —
every one a valid action, so a replay of the history reports no findings.
"""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from web3 import Web3  # noqa: E402

from ledger_api.chain import AnvilNode, Deployment, deploy_consortium, load_artifact  # noqa: E402
from ledger_api.chain import _tx_calls as calls  # noqa: E402
from ledger_api.chain._signing import FastSigner, UnsignedTransaction  # noqa: E402
from ledger_api.chain._tx_calls import SupportingDocumentRef  # noqa: E402
from ledger_api.chain.consortium import default_consortium  # noqa: E402
from ledger_api.chain.deploy import agency_id_bytes  # noqa: E402
from ledger_api.chain.events import JsonRpc  # noqa: E402
from ledger_api.chain.keystore import Keystore  # noqa: E402

__all__ = ["LocalChain", "free_port", "generate_history", "local_chain", "web3_event_decoders"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LocalChain:
    """A benchmark's own anvil with the default consortium deployed."""

    node: AnvilNode
    w3: Web3
    keystore: Keystore
    deployment: Deployment


@contextmanager
def local_chain(tmp: Path, *, timeout: float = 120.0) -> Iterator[LocalChain]:
    """Start anvil under ``tmp`` on a free port, deploy and bootstrap the default consortium (keys in
    ``tmp/keys``), and stop the node afterwards. anvil may still be writing its last state dump while
    ``tmp`` is removed: callers create it with ``ignore_cleanup_errors=True``."""
    node = AnvilNode(state_dir=tmp / "anvil", port=free_port())
    node.start()
    try:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": timeout}))
        (tmp / "keys").mkdir(exist_ok=True)
        keystore = Keystore(directory=tmp / "keys", password="benchmark-keystore-password")
        deployment = deploy_consortium(w3, spec=default_consortium(), keystore=keystore, fund=True)
        yield LocalChain(node=node, w3=w3, keystore=keystore, deployment=deployment)
    finally:
        node.stop()


def web3_event_decoders(w3: Web3, deployment: Deployment) -> dict[tuple[str, bytes], Any]:
    """web3's decoder of every event of both contracts, by (address, topic0): the baseline."""
    decoders: dict[tuple[str, bytes], Any] = {}
    for name, address in (("AgencyRegistry", deployment.registry), ("ClearanceLedger", deployment.ledger)):
        contract = w3.eth.contract(address=address, abi=load_artifact(name).abi)
        for event in contract.events:
            inputs = event.abi["inputs"]
            types = ",".join(
                "(" + ",".join(c["type"] for c in p["components"]) + ")" + p["type"][5:]
                if p["type"].startswith("tuple")
                else p["type"]
                for p in inputs
            )
            decoders[(address, bytes(Web3.keccak(text=f"{event.abi['name']}({types})")))] = event()
    return decoders


def _h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _cid(digest: bytes) -> bytes:
    return bytes.fromhex("01551220") + digest


def generate_history(rpc: JsonRpc, keystore: Keystore, ledger: str, events: int, *, tag: str = "bench") -> int:
    """Mine ``events`` transactions (one event each) against ``ledger``; returns the number sent."""
    spec = default_consortium()
    jurisdiction = agency_id_bytes("CN-TJ-CUSTOMS")
    chain_id = int(rpc.call("eth_chainId"), 16)
    to = bytes.fromhex(ledger[2:])
    per_kind = events // 3

    def alert(n: int) -> bytes:
        return calls.raise_alert(
            subject_kind=0, subject=_h(f"{tag}-doc-{n}"), reason_code=n % 100, evidence_sha256=_h(f"{tag}-ev-{n}")
        ).calldata

    def batch(n: int) -> bytes:
        return calls.anchor_batch(
            root=_h(f"{tag}-root-{n}"), leaf_count=100, kind=1, manifest_cid=_cid(_h(f"{tag}-m-{n}"))
        ).calldata

    def declaration(n: int) -> bytes:
        return calls.submit_declaration(
            jurisdiction_id=jurisdiction, local_reference=_h(f"{tag}-lrn-{n}"), commitment=_h(f"{tag}-decl-{n}"),
            cid=_cid(_h(f"{tag}-c-{n}")),
            documents=[
                SupportingDocumentRef(document_type=1, sha256=_h(f"{tag}-inv-{n}"), cid=_cid(_h(f"{tag}-ci-{n}"))),
                SupportingDocumentRef(document_type=2, sha256=_h(f"{tag}-pl-{n}"), cid=_cid(_h(f"{tag}-cp-{n}"))),
            ],
        ).calldata  # fmt: skip

    kinds: list[tuple[str, Callable[[int], bytes], int]] = [
        (spec.agency("CONSORTIUM-AUDIT").signer_label(0), alert, 150_000),
        (spec.agency("NL-NVWA").signer_label(0), batch, 200_000),
        ("trader-tj-electronics", declaration, 600_000),
    ]
    rpc.call("evm_setAutomine", [False])
    sent = 0
    try:
        for label, build, gas in kinds:
            signer = FastSigner(private_key=bytes(keystore.signer(label).key))
            rpc.call("anvil_setBalance", [signer.address, hex(10**24)])  # a long history outspends the funding
            nonce = int(rpc.call("eth_getTransactionCount", [signer.address, "pending"]), 16)
            for start in range(0, per_kind, 1_000):
                raws = [
                    "0x" + signer.sign(UnsignedTransaction(
                        chain_id=chain_id, nonce=nonce + n, gas=gas, to=to, data=build(n),
                        max_fee_per_gas=10**10, max_priority_fee_per_gas=10**9,
                    )).raw.hex()
                    for n in range(start, min(per_kind, start + 1_000))
                ]  # fmt: skip
                for answer in rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws]):
                    if not isinstance(answer, str):
                        raise RuntimeError(f"transaction refused: {answer}")
                sent += len(raws)
                _mine_all(rpc)
    finally:
        rpc.call("evm_setAutomine", [True])
    return sent


def _mine_all(rpc: JsonRpc) -> None:
    while int(rpc.call("txpool_status")["pending"], 16):
        # Full blocks raise the EIP-1559 base fee 12.5 % each: hold it so a long history stays under the fee cap.
        rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
        rpc.call("evm_mine", [])
    status = rpc.call("txpool_status")
    if int(status["queued"], 16):
        inspect = str(rpc.call("txpool_inspect"))[:2000]
        raise RuntimeError(f"transactions were never mined (nonce gap or funds): {status} {inspect}")
