"""Helpers and constants shared by the contract suite (imported by conftest.py and the tests).

* ``consortium`` (module scope) deploys an AgencyRegistry + ClearanceLedger, registers one agency per
  role plus a suspended all-roles agency, signer keys (including a rotated-out and a compromised
  key), traders, lets the ledger be a governed target and then *finishes bootstrap*: everything a
  test does afterwards goes through M-of-N proposals, as in production.
* ``isolate`` (autouse) wraps every test in brownie's ``fn_isolation`` snapshot/revert.
* ``expect_revert`` compares the *raw* revert data (selector + ABI-encoded arguments) with the
  expected custom error. brownie 1.22 only exposes a decoded string (``VirtualMachineError.revert_msg``
  is ``"<ErrorName>: arg, arg"``, built by ``brownie.exceptions.decode_typed_error``), which loses
  types; the helper therefore asks anvil for the revert data of the very same call
  (``eth_estimateGas`` runs it in the pending block, like the transaction would be) and, with
  ``send=True``, additionally sends the transaction through brownie and checks brownie's decoded
  message equals the decoding of the expected bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import eth_abi
import pytest
from brownie import accounts, chain, web3
from brownie.exceptions import VirtualMachineError, decode_typed_error
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

# ---------------------------------------------------------------------------------------- enums

CUSTOMS, INSPECTION, PARTNER, RISK, AUDITOR, REGISTRAR = (1 << i for i in range(6))
ALL_ROLES = 0x3F

AGENCY_NONE, AGENCY_ACTIVE, AGENCY_SUSPENDED, AGENCY_REMOVED = range(4)
TRADER_NONE, TRADER_ACTIVE, TRADER_SUSPENDED = range(3)
(
    ST_NONE,
    ST_SUBMITTED,
    ST_ACCEPTED,
    ST_RELEASED,
    ST_HELD,
    ST_REJECTED,
    ST_SEIZED,
    ST_SUPERSEDED,
) = range(8)
CH_NONE, CH_GREEN, CH_YELLOW, CH_RED = range(4)
(
    DOCUMENT_CHECK,
    PHYSICAL_EXAM,
    XRAY_SCAN,
    LAB_TEST,
    QUARANTINE,
    EXPORT_CLEARANCE,
    ORIGIN_VERIFICATION,
    SANITARY_CHECK,
) = range(8)
R_NONE, PASS, FAIL, INCONCLUSIVE = range(4)
RELEASE, HOLD, REJECT, SEIZE = range(4)
AK_NONE, AK_DECLARATION, AK_SUPPORTING, AK_STAMP_REPORT, AK_BATCH_ROOT = range(5)
SUBJ_DOCUMENT, SUBJ_DECLARATION, SUBJ_TRADER = range(3)

DAY = 86400
YEAR = 365 * DAY
LIFETIME = DAY
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def bit(*types: int) -> int:
    """Bit mask of stamp types / roles."""
    mask = 0
    for t in types:
        mask |= 1 << t
    return mask


def b32(text: str) -> bytes:
    """A short ASCII code right-padded to bytes32 (agency ids, references, error field names)."""
    raw = text.encode()
    assert len(raw) <= 32
    return raw.ljust(32, b"\x00")


def sha(label: str | bytes) -> bytes:
    """sha256 of a label: stands in for a document / report / commitment hash."""
    return hashlib.sha256(label if isinstance(label, bytes) else label.encode()).digest()


def cid(label: str, length: int = 36) -> bytes:
    """A binary CIDv1-shaped value of `length` bytes (raw codec, sha2-256 multihash)."""
    body = b"\x01\x55\x12\x20" + sha("cid:" + label)
    return (body * (length // len(body) + 1))[:length]


def docs(label: str, count: int = 3) -> list[tuple[int, bytes, bytes]]:
    """`count` supporting documents {type, sha256, cid}."""
    return [(i + 1, sha(f"{label}/doc{i}"), cid(f"{label}/doc{i}")) for i in range(count)]


def addr(who: Any) -> str:
    return to_checksum_address(who if isinstance(who, str) else who.address)


def now() -> int:
    """Timestamp of the latest block (what the last transaction saw)."""
    return int(web3.eth.get_block("latest")["timestamp"])


def plain(value: Any) -> Any:
    """brownie values (Wei, HexString, EthAddress, ReturnValue, event items, accounts, contracts) as
    plain Python values, so that they compare with literals: addresses → checksum str, byte strings →
    bytes, integers → int, sequences → tuple, mappings → dict."""
    if hasattr(value, "items") and not isinstance(value, (list, tuple)):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "address") and not isinstance(value, (str, bytes)):
        return to_checksum_address(value.address)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        if len(value) == 42 and value.startswith("0x"):
            return to_checksum_address(value)
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value


def as_dict(value: Any) -> dict[str, Any]:
    """A struct return value as a plain dict."""
    return plain(value.dict()) if hasattr(value, "dict") else plain(dict(value))


def event(tx: Any, name: str, index: int = 0) -> dict[str, Any]:
    """One decoded event of a receipt as a plain dict."""
    return plain(tx.events[name][index])


def pin_next_timestamp(offset: int = 1) -> int:
    """Fix the next block's timestamp (and the pending-block time calls see) to latest + offset."""
    t = now() + offset
    web3.provider.make_request("evm_setNextBlockTimestamp", [t])
    return t


# ---------------------------------------------------------------------------------------- errors


class ErrorCodec:
    """Custom errors of both contracts: name → (selector, argument types)."""

    def __init__(self, *containers: Any) -> None:
        self.by_name: dict[str, tuple[bytes, list[str]]] = {}
        for container in containers:
            for item in container.abi:
                if item["type"] != "error":
                    continue
                types = [i["type"] for i in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.by_name[item["name"]] = (selector, types)

    def encode(self, name: str, *args: Any) -> bytes:
        selector, types = self.by_name[name]
        assert len(types) == len(args), f"{name} takes {types}, got {args!r}"
        values = [_abi_value(t, a) for t, a in zip(types, args, strict=True)]
        return selector + eth_abi.encode(types, values)


def _abi_value(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return addr(value)
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return HexBytes(value) if not isinstance(value, bytes) else value
    return value


def revert_data(method: Any, args: list[Any], sender: Any) -> bytes:
    """Raw revert data of `method(*args)` sent by `sender`, asked of anvil in the pending block.

    Fails the test when the call would succeed."""
    call = {"from": addr(sender), "to": method._address, "data": method.encode_input(*args)}
    response = web3.provider.make_request("eth_estimateGas", [call])
    if "error" not in response:
        raise AssertionError(f"{method._name} did not revert (estimated gas {response.get('result')})")
    return bytes(HexBytes(response["error"].get("data") or "0x"))


# ---------------------------------------------------------------------------------------- merkle


def merkle_leaf(types: list[str], values: list[Any]) -> bytes:
    """OpenZeppelin StandardMerkleTree leaf: keccak256(bytes.concat(keccak256(abi.encode(values))))."""
    return keccak(keccak(eth_abi.encode(types, values)))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b if a < b else b + a)


class StandardMerkleTree:
    """Python port of @openzeppelin/merkle-tree (StandardMerkleTree, sortLeaves=true)."""

    def __init__(self, types: list[str], values: list[list[Any]]) -> None:
        hashed = sorted(((merkle_leaf(types, v), i) for i, v in enumerate(values)), key=lambda pair: pair[0])
        n = len(hashed)
        self.tree: list[bytes] = [b""] * (2 * n - 1)
        self.tree_index_of_value: dict[int, int] = {}
        for position, (leaf, value_index) in enumerate(hashed):
            self.tree[len(self.tree) - 1 - position] = leaf
            self.tree_index_of_value[value_index] = len(self.tree) - 1 - position
        for i in range(len(self.tree) - 1 - n, -1, -1):
            self.tree[i] = _hash_pair(self.tree[2 * i + 1], self.tree[2 * i + 2])
        self.types = types
        self.values = values

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def leaf(self, value_index: int) -> bytes:
        return self.tree[self.tree_index_of_value[value_index]]

    @staticmethod
    def _sibling(i: int) -> int:
        return i + 1 if i % 2 == 1 else i - 1

    def proof(self, value_index: int) -> list[bytes]:
        i = self.tree_index_of_value[value_index]
        proof = []
        while i > 0:
            proof.append(self.tree[self._sibling(i)])
            i = (i - 1) // 2
        return proof

    def multiproof(self, value_indices: list[int]) -> tuple[list[bytes], list[bool], list[bytes]]:
        """(leaves, proof, proofFlags) as OpenZeppelin's getMultiProof returns them."""
        indices = sorted((self.tree_index_of_value[v] for v in value_indices), reverse=True)
        stack = list(indices)
        proof: list[bytes] = []
        flags: list[bool] = []
        while stack and stack[0] > 0:
            j = stack.pop(0)
            s = self._sibling(j)
            p = (j - 1) // 2
            if stack and s == stack[0]:
                flags.append(True)
                stack.pop(0)
            else:
                flags.append(False)
                proof.append(self.tree[s])
            stack.append(p)
        if not indices:
            proof.append(self.tree[0])
        return [self.tree[i] for i in indices], proof, flags


# ---------------------------------------------------------------------------------------- keys


def local_key(name: str) -> Any:
    """A brownie LocalAccount with a deterministic private key (so it can sign EIP-712)."""
    private_key = keccak(text=f"customs-ledger-test-key/{name}")
    address = Account.from_key(private_key).address
    for existing in accounts:
        if existing.address == address:
            return existing
    return accounts.add(private_key.hex())


STAMP_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Stamp": [
        {"name": "declarationId", "type": "bytes32"},
        {"name": "stampType", "type": "uint8"},
        {"name": "result", "type": "uint8"},
        {"name": "reportSha256", "type": "bytes32"},
        {"name": "reportCid", "type": "bytes"},
        {"name": "signer", "type": "address"},
        {"name": "signedAt", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def stamp_tuple(message: dict[str, Any]) -> tuple:
    """The SignedStamp struct as the ABI tuple relayStamp takes."""
    return (
        message["declarationId"],
        message["stampType"],
        message["result"],
        message["reportSha256"],
        message["reportCid"],
        message["signer"],
        message["signedAt"],
        message["nonce"],
        message["deadline"],
    )


def sign_stamp(
    key: Any,
    message: dict[str, Any],
    *,
    chain_id: int | None = None,
    verifying_contract: str | None = None,
    name: str = "ClearanceLedger",
    version: str = "1",
    ledger: Any = None,
) -> bytes:
    """EIP-712 signature (r ‖ s ‖ v, 65 bytes) of a Stamp by `key` (a LocalAccount)."""
    domain = {
        "name": name,
        "version": version,
        "chainId": chain_id if chain_id is not None else chain.id,
        "verifyingContract": verifying_contract or ledger.address,
    }
    signable = encode_typed_data(
        full_message={"types": STAMP_TYPES, "primaryType": "Stamp", "domain": domain, "message": message}
    )
    signed = Account.sign_message(signable, key.private_key)
    return bytes(signed.signature)


def high_s(signature: bytes) -> bytes:
    """The malleable twin of a signature: s' = n − s, v flipped (ecrecover accepts it, OZ must not)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28


# ---------------------------------------------------------------------------------------- consortium


@dataclass
class Consortium:
    """A deployed, bootstrapped consortium plus the helpers tests use to drive it."""

    reg: Any
    led: Any
    errors: ErrorCodec
    deployer: Any
    governors: list[Any]
    outsider: Any
    agencies: dict[str, bytes]
    index: dict[str, int]
    keys: SimpleNamespace
    traders: SimpleNamespace
    counter: list[int] = field(default_factory=lambda: [0])

    # -- reverts -------------------------------------------------------------------------------
    def expect_revert(
        self, method: Any, args: list[Any], sender: Any, error: str, *error_args: Any, send: bool = False
    ) -> None:
        """Assert `method(*args)` from `sender` reverts with exactly `error(*error_args)`.

        The next block's timestamp is pinned to latest + 1 first, so a time argument of the error is
        ``now() + 1`` when computed before the call."""
        expected = self.errors.encode(error, *error_args)
        pin_next_timestamp()  # error arguments may carry the time: the call and the tx see latest + 1
        actual = revert_data(method, args, sender)
        assert actual == expected, (
            f"{method._name}: expected {error}{tuple(error_args)!r} = 0x{expected.hex()}, "
            f"got {decode_typed_error('0x' + actual.hex())} = 0x{actual.hex()}"
        )
        if send:
            with pytest.raises(VirtualMachineError) as info:
                method(*args, {"from": sender})
            assert info.value.revert_msg == decode_typed_error("0x" + expected.hex())
        else:
            web3.provider.make_request("evm_mine", [])  # consume the pinned timestamp

    # -- governance ----------------------------------------------------------------------------
    def propose(self, target: Any, method: Any, *args: Any, proposer: Any = None) -> int:
        tx = self.reg.propose(addr(target), method.encode_input(*args), {"from": proposer or self.governors[0]})
        return int(tx.events["ProposalCreated"]["proposalId"])

    def govern(self, method: Any, *args: Any) -> Any:
        """Run `method(*args)` through propose → approve → execute; returns the execute receipt."""
        target = method._address
        pid = self.propose(target, method, *args)
        self.reg.approve(pid, {"from": self.governors[1]})
        return self.reg.execute(pid, {"from": self.governors[0]})

    # -- declarations --------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.counter[0] += 1
        return f"{prefix}-{self.counter[0]}"

    def submit(self, trader: Any = None, jurisdiction: str = "CN", n_docs: int = 3, label: str | None = None) -> bytes:
        label = label or self.fresh("decl")
        commitment = sha(label)
        self.led.submitDeclaration(
            self.agencies[jurisdiction],
            b32("LRN-" + label[-20:]),
            commitment,
            cid(label),
            docs(label, n_docs),
            {"from": trader or self.traders.t1},
        )
        return commitment

    def accept(self, declaration_id: bytes, mrn: bytes | None = None, key: Any = None) -> Any:
        mrn = mrn or b32("MRN-" + declaration_id.hex()[:16])
        return self.led.acceptDeclaration(declaration_id, mrn, {"from": key or self.keys.cn})

    def channel(self, declaration_id: bytes, channel: int, required: int, key: Any = None) -> Any:
        return self.led.assignChannel(
            declaration_id, channel, required, sha("rules-v1"), {"from": key or self.keys.oracle}
        )

    def stamp(self, declaration_id: bytes, stamp_type: int, result: int = PASS, key: Any = None) -> bytes:
        report = sha(self.fresh("report"))
        key = key or (self.keys.partner if stamp_type == EXPORT_CLEARANCE else self.keys.lab)
        self.led.recordStamp(declaration_id, stamp_type, result, report, cid(report.hex()), {"from": key})
        return report

    def accepted(self, channel: int = CH_YELLOW, required: int | None = None, jurisdiction: str = "CN") -> bytes:
        """A declaration ACCEPTED with a channel (default YELLOW requiring DOCUMENT_CHECK + LAB_TEST)."""
        required = bit(DOCUMENT_CHECK, LAB_TEST) if required is None else required
        did = self.submit(jurisdiction=jurisdiction)
        self.accept(did, key=self.keys.cn if jurisdiction == "CN" else self.keys.nl)
        if channel != CH_NONE:
            self.channel(did, channel, required)
        return did

    def decl(self, declaration_id: bytes) -> dict[str, Any]:
        return as_dict(self.led.declaration(declaration_id))
