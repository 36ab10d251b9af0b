"""Deploy the contracts from the committed artifacts, bootstrap a consortium, and keep a record.

The record (``<var_dir>/deployment.json``) is what every later command reads to find the contracts;
``ensure_deployed`` makes the embedded default idempotent: the first run deploys and bootstraps,
later runs verify the record against the chain (chain id + runtime code hashes) and reuse it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives import serialization
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import Nonce, TxParams, TxReceipt

from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.consortium import ConsortiumSpec, default_consortium
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import EMBEDDED_CHAIN_ID, AnvilNode
from ledger_api.chain.reverts import decode_revert
from ledger_api.config import Settings
from ledger_api.errors import ChainUnavailable, DeploymentError

__all__ = ["Deployment", "deploy_consortium", "ensure_deployed", "agency_id_bytes"]

#: Signer keys created at bootstrap are valid for this long.
KEY_VALIDITY_SECONDS = 365 * 24 * 3600
#: Balance given to each embedded account (anvil_setBalance): 100 ether.
_EMBEDDED_BALANCE = hex(100 * 10**18)


@dataclass(frozen=True, kw_only=True)
class AgencyRecord:
    """Where an agency's keys are (addresses only; private keys stay in the keystore)."""

    index: int
    signers: tuple[str, ...]
    encryption_public_key: str  # 0x-hex X25519 public key


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """The on-disk record of a deployed, bootstrapped consortium."""

    chain_id: int
    registry: str
    ledger: str
    deployment_block: int
    registry_codehash: str
    ledger_codehash: str
    deployer: str
    governors: tuple[str, ...]
    threshold: int
    agencies: dict[str, AgencyRecord] = field(default_factory=dict)
    traders: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the record atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a record written by :meth:`save`."""
        try:
            raw = json.loads(path.read_text())
            agencies = {
                k: AgencyRecord(
                    index=v["index"], signers=tuple(v["signers"]), encryption_public_key=v["encryption_public_key"]
                )
                for k, v in raw.pop("agencies").items()
            }
            raw["governors"] = tuple(raw["governors"])
            return cls(agencies=agencies, **raw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DeploymentError(f"unreadable deployment record {path}: {exc}") from exc


def agency_id_bytes(agency_id: str) -> bytes:
    """The bytes32 form of an agency code: ASCII, right-padded with zeros."""
    raw = agency_id.encode("ascii")
    if not 0 < len(raw) <= 32:
        raise DeploymentError(f"agency id {agency_id!r} must be 1..32 ASCII characters")
    return raw.ljust(32, b"\0")


class _Transactor:
    """Signs locally and sends one transaction at a time, turning reverts into domain errors."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.chain_id = w3.eth.chain_id
        self._nonces: dict[str, int] = {}

    def _nonce(self, account: LocalAccount) -> int:
        if account.address not in self._nonces:
            self._nonces[account.address] = self.w3.eth.get_transaction_count(account.address, "pending")
        return self._nonces[account.address]

    def send(self, account: LocalAccount, call: ContractFunction | Any, what: str) -> TxReceipt:
        params: TxParams = {"from": account.address, "nonce": Nonce(self._nonce(account)), "chainId": self.chain_id}
        try:
            tx = call.build_transaction(params)
        except (ContractCustomError, ContractLogicError) as exc:
            data = exc.data if isinstance(exc.data, str) else None
            decoded = decode_revert(bytes.fromhex(data[2:])) if data and data.startswith("0x") else None
            raise DeploymentError(f"{what} reverted: {decoded or exc}") from exc
        signed = account.sign_transaction(cast(dict[str, Any], tx))
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonces[account.address] += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise DeploymentError(f"{what} failed in block {receipt['blockNumber']}")
        return receipt


def deploy_consortium(w3: Web3, *, spec: ConsortiumSpec, keystore: Keystore, fund: bool) -> Deployment:
    """Deploy AgencyRegistry + ClearanceLedger and bootstrap ``spec``; return the record.

    ``fund`` gives every account a balance with ``anvil_setBalance`` (embedded chain only).
    """
    deployer = keystore.signer("deployer")
    governors = [keystore.signer(f"governor-{n}") for n in range(spec.governors)]
    signers = {a.agency_id: [keystore.signer(a.signer_label(n)) for n in range(a.signers)] for a in spec.agencies}
    traders = {t.label: keystore.signer(t.label) for t in spec.traders}
    if fund:
        everyone = [deployer, *governors, *traders.values(), *(s for group in signers.values() for s in group)]
        for account in everyone:
            w3.provider.make_request("anvil_setBalance", [account.address, _EMBEDDED_BALANCE])  # type: ignore[arg-type]

    tx = _Transactor(w3)
    registry_artifact, ledger_artifact = load_artifact("AgencyRegistry"), load_artifact("ClearanceLedger")
    registry_factory = w3.eth.contract(abi=registry_artifact.abi, bytecode=registry_artifact.bytecode)
    receipt = tx.send(
        deployer,
        registry_factory.constructor([g.address for g in governors], spec.threshold, spec.proposal_lifetime),
        "deploy AgencyRegistry",
    )
    registry = w3.eth.contract(address=receipt["contractAddress"], abi=registry_artifact.abi)
    deployment_block = receipt["blockNumber"]
    ledger_factory = w3.eth.contract(abi=ledger_artifact.abi, bytecode=ledger_artifact.bytecode)
    receipt = tx.send(deployer, ledger_factory.constructor(registry.address), "deploy ClearanceLedger")
    ledger = w3.eth.contract(address=receipt["contractAddress"], abi=ledger_artifact.abi)
    tx.send(deployer, registry.functions.setGovernedTarget(ledger.address, True), "set governed target")

    now = w3.eth.get_block("latest")["timestamp"]
    agencies: dict[str, AgencyRecord] = {}
    for index, agency in enumerate(spec.agencies, start=1):
        public_key = (
            keystore.encryption_key(agency.agency_id.lower())
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        agency_id = agency_id_bytes(agency.agency_id)
        tx.send(
            deployer,
            registry.functions.addAgency(
                agency_id, agency.name, agency.country.encode(), agency.role_mask, public_key, agency.ipfs_endpoint
            ),
            f"add agency {agency.agency_id}",
        )
        for signer in signers[agency.agency_id]:
            tx.send(
                deployer,
                registry.functions.addSignerKey(agency_id, signer.address, now, now + KEY_VALIDITY_SECONDS),
                f"add signer key of {agency.agency_id}",
            )
        agencies[agency.agency_id] = AgencyRecord(
            index=index,
            signers=tuple(s.address for s in signers[agency.agency_id]),
            encryption_public_key="0x" + public_key.hex(),
        )
    for kind, approvals in spec.dual_control.items():
        tx.send(deployer, ledger.functions.setApprovalsRequired(int(kind), approvals), f"dual control {kind.name}")
    for trader in spec.traders:
        registrar = signers[spec.agency(trader.registrar).agency_id][0]
        tx.send(
            registrar,
            registry.functions.registerTrader(traders[trader.label].address, trader.aeo),
            f"register trader {trader.label}",
        )
    tx.send(deployer, registry.functions.finishBootstrap(), "finish bootstrap")

    return Deployment(
        chain_id=tx.chain_id,
        registry=registry.address,
        ledger=ledger.address,
        deployment_block=deployment_block,
        registry_codehash=Web3.keccak(w3.eth.get_code(registry.address)).to_0x_hex(),
        ledger_codehash=Web3.keccak(w3.eth.get_code(ledger.address)).to_0x_hex(),
        deployer=deployer.address,
        governors=tuple(g.address for g in governors),
        threshold=spec.threshold,
        agencies=agencies,
        traders={label: account.address for label, account in traders.items()},
    )


def verify_deployment(w3: Web3, record: Deployment) -> None:
    """Check the record against the chain: same chain id and runtime code at both addresses."""
    if w3.eth.chain_id != record.chain_id:
        raise DeploymentError(f"deployment record is for chain {record.chain_id}, node serves {w3.eth.chain_id}")
    for name, address, codehash in (
        ("AgencyRegistry", record.registry, record.registry_codehash),
        ("ClearanceLedger", record.ledger, record.ledger_codehash),
    ):
        if Web3.keccak(w3.eth.get_code(Web3.to_checksum_address(address))).to_0x_hex() != codehash:
            raise DeploymentError(
                f"{name} code at {address} does not match the deployment record: the chain state was lost "
                "or replaced (run `ledger node reset` to start a fresh embedded chain)"
            )


def ensure_deployed(settings: Settings, *, spec: ConsortiumSpec | None = None) -> tuple[Deployment, bool]:
    """Make sure a bootstrapped consortium exists; return its record and whether it was created now.

    On the embedded default this also starts (or reuses) the supervised anvil under ``var_dir``.
    """
    if settings.embedded:
        AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port, binary=settings.anvil_binary).start()
    w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainUnavailable(settings.effective_rpc_url)
    record_path = settings.var_dir / "deployment.json"
    if record_path.exists():
        record = Deployment.load(record_path)
        verify_deployment(w3, record)
        return record, False
    keystore = Keystore.from_settings(settings)
    record = deploy_consortium(
        w3,
        spec=spec or default_consortium(),
        keystore=keystore,
        fund=settings.embedded and w3.eth.chain_id == EMBEDDED_CHAIN_ID,
    )
    record.save(record_path)
    return record, True
