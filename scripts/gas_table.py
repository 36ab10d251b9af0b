"""Measure the gas of every state-changing contract function on a fresh anvil; write docs/gas.md.

Usage: ``make gas`` (or ``.venv/bin/python scripts/gas_table.py [--output docs/gas.md]``).
It starts its own anvil on a free port, deploys from the committed artifacts, drives each function
through a realistic scenario, and also checks that gas does not grow with stored state (the 1st vs
the 201st declaration, batches of 1 vs 1,000,000 leaves). Misses are listed on stderr and explained in
the output; ``--strict`` makes them an exit status of 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402
from web3 import Web3  # noqa: E402

from ledger_api.chain.artifacts import load_artifact  # noqa: E402
from ledger_api.chain.deploy import _Transactor, agency_id_bytes  # noqa: E402
from ledger_api.chain.node import AnvilNode  # noqa: E402

# References measured on anvil (../shared/TOOLCHAIN.md): OpenAttestation DocumentStore.issue(root)
# and EAS attest.
OA_ISSUE = 47_886
EAS_ATTEST = 180_132

ROLE = {"CUSTOMS": 1, "INSPECTION": 2, "PARTNER": 4, "RISK": 8, "AUDITOR": 16, "REGISTRAR": 32}
RELEASE, HOLD, REJECT, SEIZE = 0, 1, 2, 3
PASS, FAIL = 1, 2
DOC_CHECK, PHYSICAL, XRAY, LAB = 0, 1, 2, 3


@dataclass
class Row:
    contract: str
    function: str
    scenario: str
    gas: int
    target: int | None = None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "meets" if self.gas <= self.target else f"MISSES by {self.gas - self.target:,}"


def _sha(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _cid(label: str) -> bytes:
    # A binary CIDv1 (raw codec, sha2-256): 0x01 0x55 0x12 0x20 + digest — 36 bytes, as anchored.
    return bytes([0x01, 0x55, 0x12, 0x20]) + _sha(label)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scenario:
    """A consortium on a private anvil, with helpers that record the gas of each call."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.tx = _Transactor(w3)
        self.rows: list[Row] = []
        self.accounts: dict[str, LocalAccount] = {}

    def account(self, label: str) -> LocalAccount:
        if label not in self.accounts:
            account = Account.create()
            self.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**21)])  # type: ignore[arg-type]
            self.accounts[label] = account
        return self.accounts[label]

    def send(
        self, who: str, call: Any, contract: str = "", function: str = "", scenario: str = "", target: int | None = None
    ) -> Any:
        receipt = self.tx.send(self.account(who), call, function or "call")
        if function:
            self.rows.append(Row(contract, function, scenario, int(receipt["gasUsed"]), target))
        return receipt


def run() -> list[Row]:
    node_dir = Path(tempfile.mkdtemp(prefix="ledger-gas-"))
    node = AnvilNode(state_dir=node_dir, port=_free_port())
    node.start()
    try:
        return _measure(Web3(Web3.HTTPProvider(node.rpc_url)))
    finally:
        node.stop()


def _measure(w3: Web3) -> list[Row]:  # noqa: PLR0915 - one scenario, read top to bottom
    s = Scenario(w3)
    R, L = "AgencyRegistry", "ClearanceLedger"
    reg_art, led_art = load_artifact(R), load_artifact(L)
    governors = [s.account(f"gov{i}").address for i in range(3)]
    receipt = s.send(
        "boot",
        w3.eth.contract(abi=reg_art.abi, bytecode=reg_art.bytecode).constructor(governors, 2, 7 * 86400),
        R,
        "constructor",
        "deploy with 3 governors",
    )
    reg = w3.eth.contract(address=receipt["contractAddress"], abi=reg_art.abi)
    receipt = s.send(
        "boot",
        w3.eth.contract(abi=led_art.abi, bytecode=led_art.bytecode).constructor(reg.address),
        L,
        "constructor",
        "deploy",
    )
    led = w3.eth.contract(address=receipt["contractAddress"], abi=led_art.abi)
    s.send("boot", reg.functions.setGovernedTarget(led.address, True), R, "setGovernedTarget", "bootstrap")
    now = w3.eth.get_block("latest")["timestamp"]
    agencies = {
        "CN-CUSTOMS": ROLE["CUSTOMS"] | ROLE["REGISTRAR"],
        "LAB": ROLE["INSPECTION"],
        "XRAY": ROLE["INSPECTION"],
        "NL-CUSTOMS": ROLE["PARTNER"] | ROLE["CUSTOMS"],
        "RISK": ROLE["RISK"],
        "AUDIT": ROLE["AUDITOR"],
    }
    for n, (agency, roles) in enumerate(agencies.items()):
        s.send(
            "boot",
            reg.functions.addAgency(agency_id_bytes(agency), f"{agency} agency", b"CN", roles, _sha(agency), ""),
            *((R, "addAgency", "bootstrap, name + endpoint strings") if n == 0 else ("", "", "")),
        )
        s.send(
            "boot",
            reg.functions.addSignerKey(agency_id_bytes(agency), s.account(agency).address, now, now + 10**7),
            *((R, "addSignerKey", "bootstrap") if n == 0 else ("", "", "")),
        )
    s.send(
        "boot",
        reg.functions.addSignerKey(agency_id_bytes("CN-CUSTOMS"), s.account("CN-CUSTOMS-2").address, now, now + 10**7),
    )
    s.send("boot", led.functions.setApprovalsRequired(SEIZE, 2), L, "setApprovalsRequired", "bootstrap: SEIZE needs 2")
    s.send(
        "CN-CUSTOMS", reg.functions.registerTrader(s.account("trader").address, True), R, "registerTrader", "AEO trader"
    )
    s.send("CN-CUSTOMS", reg.functions.registerTrader(s.account("trader2").address, False))
    s.send(
        "CN-CUSTOMS", reg.functions.updateTrader(s.account("trader2").address, 2, False), R, "updateTrader", "suspend"
    )
    s.send("boot", reg.functions.finishBootstrap(), R, "finishBootstrap", "")

    # Governance after bootstrap: every change is propose → approve → execute.
    def governed(call: Any, label: str) -> None:
        data = call._encode_transaction_data()
        target = call.address
        s.send("gov0", reg.functions.propose(target, data), R, "propose", f"{label} (proposer's approval counted)")
        pid = reg.functions.proposalCount().call()
        s.send("gov1", reg.functions.approve(pid), R, "approve", label)
        s.send("gov0", reg.functions.execute(pid), R, f"execute → {call.fn_name}", "2-of-3 passed proposal")

    governed(
        reg.functions.addAgency(agency_id_bytes("DE-HAM-CUSTOMS"), "Hamburg", b"DE", ROLE["CUSTOMS"], _sha("de"), ""),
        "add agency",
    )
    governed(
        reg.functions.setAgencyRoles(agency_id_bytes("DE-HAM-CUSTOMS"), ROLE["CUSTOMS"] | ROLE["PARTNER"]), "roles"
    )
    governed(
        reg.functions.addSignerKey(agency_id_bytes("DE-HAM-CUSTOMS"), s.account("DE").address, now, now + 10**7), "key"
    )
    governed(reg.functions.setSignerKeyExpiry(s.account("DE").address, now + 10**6), "rotate")
    governed(
        reg.functions.updateAgencyProfile(
            agency_id_bytes("DE-HAM-CUSTOMS"), "Hamburg Customs", _sha("de2"), "/ip4/127.0.0.1/tcp/4001"
        ),
        "profile",
    )
    governed(reg.functions.setAgencyStatus(agency_id_bytes("DE-HAM-CUSTOMS"), 2), "suspend")
    governed(reg.functions.setProposalLifetime(3 * 86400), "lifetime")
    governed(reg.functions.addGovernor(s.account("gov3").address), "add governor")
    s.send("gov0", reg.functions.propose(reg.address, reg.functions.setThreshold(3)._encode_transaction_data()))
    s.send("gov0", reg.functions.cancel(reg.functions.proposalCount().call()), R, "cancel", "by proposer")
    s.send(
        "CN-CUSTOMS",
        reg.functions.reportKeyCompromised(s.account("CN-CUSTOMS-2").address, w3.eth.get_block("latest")["timestamp"]),
        R,
        "reportKeyCompromised",
        "by another valid key of the same agency",
    )

    # Declarations: submit, amend, accept, channel, stamps, decisions.
    jurisdiction = agency_id_bytes("CN-CUSTOMS")
    docs3 = [(t, _sha(f"doc{t}"), _cid(f"doc{t}")) for t in (1, 2, 3)]
    s.send(
        "trader",
        led.functions.submitDeclaration(jurisdiction, _sha("LRN-0"), _sha("decl-0"), _cid("decl-0"), []),
        L,
        "submitDeclaration",
        "no supporting documents",
    )
    s.send(
        "trader",
        led.functions.submitDeclaration(jurisdiction, _sha("LRN-1"), _sha("decl-1"), _cid("decl-1"), docs3),
        L,
        "submitDeclaration",
        "3 supporting documents (invoice, packing list, certificate of origin)",
        150_000,
    )
    docs3b = [(t, _sha(f"doc-b{t}"), _cid(f"doc-b{t}")) for t in (1, 2, 3)]
    s.send(
        "trader",
        led.functions.amendDeclaration(_sha("decl-1"), _sha("decl-1v2"), _cid("decl-1v2"), docs3b),
        L,
        "amendDeclaration",
        "3 new supporting documents",
    )
    d = _sha("decl-1v2")
    s.send(
        "CN-CUSTOMS",
        led.functions.acceptDeclaration(d, _sha("MRN-1")),
        L,
        "acceptDeclaration",
        "assign MRN (MRN + MRN index slots)",
    )
    s.send(
        "RISK",
        led.functions.assignChannel(d, 3, (1 << LAB) | (1 << XRAY), _sha("rules-v1")),
        L,
        "assignChannel",
        "RED, LAB_TEST + XRAY_SCAN required",
    )
    s.send(
        "LAB",
        led.functions.recordStamp(d, LAB, PASS, _sha("lab-report"), _cid("lab-report")),
        L,
        "recordStamp",
        "PASS (direct)",
        80_000,
    )
    s.send(
        "XRAY",
        led.functions.recordStamp(d, XRAY, FAIL, _sha("xray-1"), _cid("xray-1")),
        L,
        "recordStamp",
        "FAIL (opens a failure)",
        80_000,
    )
    s.send("XRAY", led.functions.revokeStamp(_sha("xray-1"), 7), L, "revokeStamp", "revoke the FAIL")
    # EIP-712 stamp relayed by a third party.
    xray = s.account("XRAY")
    domain = {"name": "ClearanceLedger", "version": "1", "chainId": w3.eth.chain_id, "verifyingContract": led.address}
    types = {
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
        ]
    }
    signed_at = w3.eth.get_block("latest")["timestamp"]
    message = {
        "declarationId": d,
        "stampType": XRAY,
        "result": PASS,
        "reportSha256": _sha("xray-2"),
        "reportCid": _cid("xray-2"),
        "signer": xray.address,
        "signedAt": signed_at,
        "nonce": led.functions.nonces(xray.address).call(),
        "deadline": signed_at + 3600,
    }
    signature = Account.sign_typed_data(xray.key, domain, types, message).signature
    stamp_tuple = tuple(message[k["name"]] for k in types["Stamp"])
    s.send(
        "relayer",
        led.functions.relayStamp(stamp_tuple, signature),
        L,
        "relayStamp",
        "EIP-712 PASS relayed by a third party (first nonce)",
        80_000,
    )
    s.send(
        "CN-CUSTOMS",
        led.functions.decide(d, RELEASE, 1, _sha("release-report"), [_sha("lab-report"), _sha("xray-2")]),
        L,
        "decide",
        "RELEASE citing 2 PASS stamps",
        60_000,
    )
    # Other decisions on fresh declarations.
    for n, (kind, label) in enumerate(((HOLD, "HOLD"), (REJECT, "REJECT"))):
        dn = _sha(f"decl-x{n}")
        s.send("trader", led.functions.submitDeclaration(jurisdiction, _sha(f"LRN-x{n}"), dn, _cid(f"x{n}"), []))
        s.send("CN-CUSTOMS", led.functions.acceptDeclaration(dn, _sha(f"MRN-x{n}")))
        s.send("CN-CUSTOMS", led.functions.decide(dn, kind, 2, _sha(f"r{n}"), []), L, "decide", label, 60_000)
    # RELEASE citing a single PASS stamp (RED channel, LAB_TEST only).
    d1 = _sha("decl-one-stamp")
    s.send("trader", led.functions.submitDeclaration(jurisdiction, _sha("LRN-one"), d1, _cid("one"), []))
    s.send("CN-CUSTOMS", led.functions.acceptDeclaration(d1, _sha("MRN-one")))
    s.send("RISK", led.functions.assignChannel(d1, 3, 1 << LAB, _sha("rules-v1")))
    s.send("LAB", led.functions.recordStamp(d1, LAB, PASS, _sha("lab-one"), _cid("lab-one")))
    s.send(
        "CN-CUSTOMS",
        led.functions.decide(d1, RELEASE, 1, _sha("release-one"), [_sha("lab-one")]),
        L,
        "decide",
        "RELEASE citing 1 PASS stamp",
        60_000,
    )
    dh = _sha("decl-x0")  # HELD
    s.send(
        "CN-CUSTOMS",
        led.functions.decide(dh, SEIZE, 3, _sha("seize"), []),
        L,
        "decide",
        "SEIZE, dual control: opens a pending decision",
    )
    s.send("CN-CUSTOMS", led.functions.cancelDecision(dh), L, "cancelDecision", "")
    s.send("CN-CUSTOMS", led.functions.decide(dh, SEIZE, 3, _sha("seize"), []))
    # Second approver: a fresh valid key of the same agency (the other one was reported compromised).
    dual = s.account("CN-CUSTOMS-3")
    governed(reg.functions.addSignerKey(jurisdiction, dual.address, now, now + 10**7), "second customs key")
    s.send(
        "CN-CUSTOMS-3",
        led.functions.approveDecision(dh, []),
        L,
        "approveDecision",
        "2nd of 2 approvals: SEIZE takes effect",
        60_000,
    )
    # Green lane: channel first, then acceptance releases automatically.
    dg = _sha("decl-green")
    s.send("trader", led.functions.submitDeclaration(jurisdiction, _sha("LRN-g"), dg, _cid("g"), []))
    s.send(
        "RISK",
        led.functions.assignChannel(dg, 1, 0, _sha("rules-v1")),
        L,
        "assignChannel",
        "GREEN, no stamps (not yet accepted)",
    )
    s.send(
        "CN-CUSTOMS",
        led.functions.acceptDeclaration(dg, _sha("MRN-g")),
        L,
        "acceptDeclaration",
        "GREEN: automatic release",
    )
    # Batches, alerts.
    s.send(
        "AUDIT", led.functions.anchorBatch(_sha("root-1"), 1, 1, _cid("manifest-1")), L, "anchorBatch", "1 leaf", 50_000
    )
    s.send(
        "AUDIT",
        led.functions.anchorBatch(_sha("root-1k"), 1_000, 1, _cid("manifest-1k")),
        L,
        "anchorBatch",
        "1,000 leaves",
        50_000,
    )
    s.send(
        "AUDIT",
        led.functions.anchorBatch(_sha("root-1m"), 1_000_000, 1, _cid("manifest-1m")),
        L,
        "anchorBatch",
        "1,000,000 leaves",
        50_000,
    )
    s.send("AUDIT", led.functions.raiseAlert(0, _sha("doc1"), 9, _sha("evidence")), L, "raiseAlert", "flag a document")
    s.send("AUDIT", led.functions.clearAlert(1, 0), L, "clearAlert", "by the raising agency")

    # Growth check: the same operations after much more stored state.
    for i in range(200):
        s.send(
            "trader",
            led.functions.submitDeclaration(
                jurisdiction, _sha(f"LRN-g{i}"), _sha(f"bulk-{i}"), _cid(f"b{i}"), docs3b[:0]
            ),
        )
    s.send(
        "trader",
        led.functions.submitDeclaration(
            jurisdiction,
            _sha("LRN-201"),
            _sha("decl-201"),
            _cid("decl-201"),
            [(t, _sha(f"doc-c{t}"), _cid(f"doc-c{t}")) for t in (1, 2, 3)],
        ),
        L,
        "submitDeclaration",
        "3 documents, after 200 more declarations stored",
        150_000,
    )
    return s.rows


def render(rows: list[Row]) -> str:
    lines = [
        "# Gas table",
        "",
        "Produced by `make gas` (`scripts/gas_table.py`) on anvil from the committed artifacts "
        "(solc 0.8.37, via-IR, optimizer 200 runs, EVM cancun). Do not edit by hand.",
        "",
        f"References measured on anvil: OpenAttestation `DocumentStore.issue(root)` **{OA_ISSUE:,}** gas per "
        f"batch; EAS `attest` **{EAS_ATTEST:,}** gas.",
        "",
        "| contract | function | scenario | gas | target | vs EAS attest | verdict |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        target = f"{r.target:,}" if r.target else ""
        lines.append(
            f"| {r.contract} | `{r.function}` | {r.scenario} | {r.gas:,} | {target} | "
            f"{r.gas / EAS_ATTEST:.2f}× | {r.verdict} |"
        )
    batches = [r for r in rows if r.function == "anchorBatch"]
    submits = [r for r in rows if r.function == "submitDeclaration" and "3 " in r.scenario]
    lines += ["", "## Growth with stored state", ""]
    if batches:
        lines.append(
            f"- `anchorBatch`: {', '.join(f'{r.scenario} → {r.gas:,}' for r in batches)}; at 1,000 documents "
            f"that is {batches[1].gas / 1000:.1f} gas per document (vs OpenAttestation {OA_ISSUE / 1000:.1f})."
        )
    if len(submits) >= 2:
        lines.append(
            f"- `submitDeclaration` with 3 documents: first {submits[0].gas:,}, after 200 more declarations "
            f"{submits[-1].gas:,} (difference {submits[-1].gas - submits[0].gas:+,})."
        )
    lines += [
        "",
        "No function loops over stored collections: loops run only over calldata "
        "(≤ 32 documents, ≤ 16 cited stamps) or the 16 stamp-type bits.",
        "",
    ]
    missed = {r.function for r in rows if r.target is not None and r.gas > r.target}
    if missed:
        lines += ["## Why the misses", ""]
        lines += [f"- `{name}`: {why}" for name, why in _MISS_REASONS.items() if name in missed]
        lines.append("")
    return "\n".join(lines)


#: Where the gas of each over-target function goes (kept next to the measurements it explains).
_MISS_REASONS = {
    "anchorBatch": "one new slot (22.1k) + base tx (21k) as in OpenAttestation, plus ~7k for authorization "
    "against the separate AgencyRegistry (cold account 2.6k + signer-key slot 2.1k + agency slot 2.1k) where "
    "OpenAttestation checks a single owner slot, plus the manifest CID in calldata and the event. Per document it "
    "is under 50 gas from ~1,170 leaves per batch.",
    "recordStamp": "two new slots (stamp record keyed by report sha256 so `anchorOf(report)` answers on chain, "
    "44.2k) + the same ~7k registry authorization; a FAIL / INCONCLUSIVE also opens a failure counter "
    "(+22.1k) that blocks RELEASE until the stamp is revoked. Dropping the on-chain report lookup would bring a "
    "PASS to ~63k.",
    "relayStamp": "as recordStamp plus signature recovery, the EIP-712 struct hash and the signer's nonce slot "
    "(22.1k for a signer's first relayed stamp, 2.9k afterwards).",
    "decide": "RELEASE re-checks every cited stamp (2 slots + a registry key-validity call, ~7.5k each) so a stamp "
    "whose key was later reported compromised before its signing time cannot release goods. With one cited stamp "
    "it meets the target; HOLD / REJECT / SEIZE meet it.",
    "approveDecision": "the final approval still records the approver (a new slot) before the decision takes effect.",
}


def main() -> int:
    """Measure and write the table; with --strict return 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "gas.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    started = time.monotonic()
    rows = run()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows))
    misses = [r for r in rows if r.target is not None and r.gas > r.target]
    print(
        f"wrote {args.output} ({len(rows)} rows, {time.monotonic() - started:.1f}s); {len(misses)} target(s) missed",
        file=sys.stderr,
    )
    for r in misses:
        print(f"  {r.contract}.{r.function} [{r.scenario}]: {r.gas:,} > {r.target:,}", file=sys.stderr)
    return 1 if misses and args.strict else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
