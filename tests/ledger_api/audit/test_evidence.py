"""Evidence bundles on a real anvil: export → verify offline; every mutation fails; cast agrees.

One module-scoped history: a declaration with two supporting documents, accepted, RED channel
(LAB_TEST + PHYSICAL_EXAM), a direct LAB_TEST PASS, an EIP-712 PHYSICAL_EXAM PASS relayed by a
governor, a RELEASE decision citing both; a Merkle batch of documents; some random history around it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_api.audit import export_bundle
from ledger_api.audit._evidence import bundle_zip
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.documents import DocumentBatch, StandardMerkleTree
from ledger_api.errors import EvidenceError, EvidenceExportError, EvidenceInvalid, MalformedBundle
from ledger_api.verify.evidence import (
    TrustedDeployment,
    canonical_bundle,
    header_hash,
    read_bundle_zip,
    verify_bundle,
)

from .conftest import LAB_TEST, PASS, PHYSICAL_EXAM, RED, RELEASE, Chain, HistoryGenerator, fake_cid, h

pytestmark = pytest.mark.integration

INVOICE = b"%PDF-1.7 commercial invoice INV-2026-0042: 1200 lithium cells, CIF Rotterdam\n"
PACKING = b"packing list PL-77: 40 cartons, 1.2 t\n"
MANIFEST_ITEMS = [b"parcel manifest %d\n" % n for n in range(6)]


def _sha(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


class Scenario:
    """What the history built: subjects and the trusted head."""

    declaration: bytes
    relayed_stamp: bytes
    direct_stamp: bytes
    batch_proof: dict[str, Any]
    batch_document: bytes
    batch_proof_file: dict[str, Any]  # a DocumentBatch proof file (ledger batch anchor --proofs)
    amended: tuple[bytes, bytes]  # (version 1, version 2) of an amended, accepted declaration
    random_declarations: list[bytes]  # every declaration version of the random history


@pytest.fixture(scope="module")
def scenario(chain: Chain) -> Scenario:
    """Build the history described in the module docstring."""
    s = Scenario()
    before = HistoryGenerator(chain, seed=11)
    before.run(12, checkpoints=0)
    trader = chain.deployment.traders["trader-tj-electronics"]
    declaration = h("evidence/declaration")
    docs = [
        calls.SupportingDocumentRef(document_type=1, sha256=_sha(INVOICE), cid=fake_cid("evidence/invoice")),
        calls.SupportingDocumentRef(document_type=2, sha256=_sha(PACKING), cid=fake_cid("evidence/packing")),
    ]
    chain.ledger_tx(calls.submit_declaration(
        jurisdiction_id=agency_id_bytes("CN-TJ-CUSTOMS"), local_reference=h("evidence/lrn"), commitment=declaration,
        cid=fake_cid("evidence/declaration"), documents=docs), trader)  # fmt: skip
    customs = chain.signer("CN-TJ-CUSTOMS")
    chain.ledger_tx(calls.accept_declaration(declaration_id=declaration, mrn=h("evidence/mrn")), customs)
    required = (1 << LAB_TEST) | (1 << PHYSICAL_EXAM)
    chain.ledger_tx(calls.assign_channel(declaration_id=declaration, channel=RED, required_stamps=required,
                                         rule_set_hash=h("rules-v1")), chain.signer("CONSORTIUM-RISK"))  # fmt: skip
    direct = h("evidence/lab-report")
    chain.ledger_tx(calls.record_stamp(declaration_id=declaration, stamp_type=LAB_TEST, result=PASS,
                                       report_sha256=direct, report_cid=fake_cid("evidence/lab-report")),
                    chain.signer("CN-TJ-CIQ-LAB"))  # fmt: skip
    # An EIP-712 stamp signed off chain by an NVWA inspector, relayed by a governor's account.
    inspector = chain.account("nl-nvwa-signer-0")
    chain.w3.provider.make_request("evm_increaseTime", [10])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    signed_at = int(chain.w3.eth.get_block("latest")["timestamp"]) - 5
    relayed = h("evidence/exam-report")
    fields = calls.SignedStampFields(
        declaration_id=declaration, stamp_type=PHYSICAL_EXAM, result=PASS, report_sha256=relayed,
        report_cid=fake_cid("evidence/exam-report"), signer=inspector.address, signed_at=signed_at,
        nonce=int(chain.ledger.functions.nonces(inspector.address).call()), deadline=signed_at + 3600,
    )  # fmt: skip
    digest = chain.ledger.functions.stampDigest(
        (declaration, PHYSICAL_EXAM, PASS, relayed, fields.report_cid, inspector.address, signed_at, fields.nonce,
         fields.deadline)).call()  # fmt: skip
    signature = inspector.unsafe_sign_hash(digest).signature
    chain.web3_tx(chain.account("governor-0"), chain.ledger.functions.relayStamp(
        (declaration, PHYSICAL_EXAM, PASS, relayed, fields.report_cid, inspector.address, signed_at, fields.nonce,
         fields.deadline), signature))  # fmt: skip
    release = calls.decide(declaration_id=declaration, kind=RELEASE, reason_code=1,
                           report_sha256=h("evidence/release"), pass_stamps=[direct, relayed])  # fmt: skip
    chain.ledger_tx(release, customs)
    # A Merkle batch of parcel manifests.
    tree = StandardMerkleTree.of([[_hex(_sha(m)), n] for n, m in enumerate(MANIFEST_ITEMS)], ["bytes32", "uint256"])
    chain.ledger_tx(calls.anchor_batch(root=bytes.fromhex(tree.root[2:]), leaf_count=len(MANIFEST_ITEMS), kind=1,
                                       manifest_cid=fake_cid("evidence/manifest")),
                    chain.signer("NL-RTM-CUSTOMS"))  # fmt: skip
    # A document batch as `ledger batch anchor` builds it: leaves are the documents' sha256, a proof file each.
    documents = DocumentBatch.build([_sha(m) for m in MANIFEST_ITEMS[:4]], names=[f"m{n}" for n in range(4)], kind=3)
    chain.ledger_tx(calls.anchor_batch(root=bytes.fromhex(documents.root[2:]), leaf_count=4, kind=3,
                                       manifest_cid=fake_cid("evidence/batch-manifest")),
                    chain.signer("NL-NVWA"))  # fmt: skip
    s.batch_proof_file = documents.proofs(manifest_cid="bafkreiexample")[1]
    # An accepted declaration amended after acceptance (version 2 keeps the MRN and the jurisdiction);
    # the amendment lists the invoice again, which stays anchored by its first declaration.
    first, second = h("evidence/amend-v1"), h("evidence/amend-v2")
    chain.ledger_tx(calls.submit_declaration(
        jurisdiction_id=agency_id_bytes("NL-RTM-CUSTOMS"), local_reference=h("evidence/amend-lrn"), commitment=first,
        cid=fake_cid("evidence/amend-v1"), documents=[]), trader)  # fmt: skip
    chain.ledger_tx(calls.accept_declaration(declaration_id=first, mrn=h("evidence/amend-mrn")),
                    chain.signer("NL-RTM-CUSTOMS"))  # fmt: skip
    chain.ledger_tx(calls.amend_declaration(previous_id=first, commitment=second, cid=fake_cid("evidence/amend-v2"),
                                            documents=docs[:1]), trader)  # fmt: skip
    after = HistoryGenerator(chain, seed=12)
    after.run(6, checkpoints=0)
    s.amended = (first, second)
    s.random_declarations = [d.id for d in before.decls + after.decls]
    s.declaration, s.relayed_stamp, s.direct_stamp = declaration, relayed, direct
    s.batch_document = MANIFEST_ITEMS[3]
    leaf = _leaf(tree, 3)
    s.batch_proof = {"root": tree.root, "leafEncoding": ["bytes32", "uint256"], "value": list(tree.value(leaf)),
                     "proof": tree.proof(leaf)}  # fmt: skip
    return s


def _leaf(tree: StandardMerkleTree, item: int) -> int:
    want = _hex(_sha(MANIFEST_ITEMS[item]))
    return next(i for i in range(len(tree)) if str(tree.value(i)[0]).lower() == want)


@pytest.fixture(scope="module")
def invoice_bundle(chain: Chain, scenario: Scenario) -> dict[str, Any]:
    """The bundle of the invoice (a supporting document of the released declaration)."""
    return export_bundle(chain.rpc_url, chain.deployment, _hex(_sha(INVOICE)))


def _trusted(bundle: dict[str, Any]) -> str:
    return header_hash(bundle["blocks"][-1]["header"])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any socket connection during the test raises."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used during offline verification")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


# ------------------------------------------------------------------ export → verify offline


def test_supporting_document_bundle_verifies_offline(invoice_bundle: dict[str, Any], scenario: Scenario,
                                                     no_network: None) -> None:  # fmt: skip
    report = verify_bundle(canonical_bundle(invoice_bundle), trusted_block=_trusted(invoice_bundle), document=INVOICE)
    assert report.anchored_as == "supporting_document"
    assert report.declaration_id == _hex(scenario.declaration)  # the first anchor, not the later amendment
    assert report.verdict_status == "VALID"
    assert report.relayed_signatures == 1 and report.document_checked
    # Storage proofs at the trusted block: the declaration, the invoice's owner, two slots per stamp.
    assert report.storage_slots == 2 + 2 * len(report.facts["stamps"])
    facts = report.facts
    assert facts["declaration"]["status"] == "RELEASED"
    assert facts["declaration"]["jurisdiction"]["code"] == "CN-TJ-CUSTOMS"
    stamps = {s["stamp_id"]: s for s in facts["stamps"]}
    assert stamps[_hex(scenario.relayed_stamp)]["signature"] == "eip712-verified"
    assert stamps[_hex(scenario.relayed_stamp)]["agency"]["code"] == "NL-NVWA"
    assert stamps[_hex(scenario.direct_stamp)]["signature"] == "direct"
    assert all(s["key_valid_at_signing"] for s in stamps.values())
    (release,) = [d for d in facts["decisions"] if d["action"] == "recorded"]
    assert release["kind"] == RELEASE and release["actor"]["key_valid"]
    assert set(release["pass_stamps"]) == {_hex(scenario.direct_stamp), _hex(scenario.relayed_stamp)}
    # Headers from the deployment block, contents only where a bloom asks for them.
    assert len(invoice_bundle["blocks"]) > report.blocks_with_contents > 0


def test_declaration_stamp_and_batch_bundles_verify(chain: Chain, scenario: Scenario) -> None:
    by_declaration = export_bundle(chain.rpc_url, chain.deployment, _hex(scenario.declaration))
    assert verify_bundle(canonical_bundle(by_declaration), trusted_block=_trusted(by_declaration)).anchored_as == (
        "declaration")  # fmt: skip
    stamp = export_bundle(chain.rpc_url, chain.deployment, _hex(scenario.relayed_stamp))
    assert verify_bundle(canonical_bundle(stamp), trusted_block=_trusted(stamp)).anchored_as == "stamp_report"
    batched = export_bundle(chain.rpc_url, chain.deployment, _hex(_sha(scenario.batch_document)),
                            merkle_proof=scenario.batch_proof)  # fmt: skip
    report = verify_bundle(canonical_bundle(batched), trusted_block=_trusted(batched), document=scenario.batch_document)
    assert report.anchored_as == "batch_leaf"
    assert report.facts["batch"]["root"] == scenario.batch_proof["root"]
    assert report.facts["batch"]["agency"]["code"] == "NL-RTM-CUSTOMS"
    by_file = export_bundle(chain.rpc_url, chain.deployment, _hex(_sha(MANIFEST_ITEMS[1])),
                            merkle_proof=scenario.batch_proof_file)  # fmt: skip
    report = verify_bundle(canonical_bundle(by_file), trusted_block=_trusted(by_file), document=MANIFEST_ITEMS[1])
    assert report.anchored_as == "batch_leaf" and report.facts["batch"]["agency"]["code"] == "NL-NVWA"
    with pytest.raises(EvidenceExportError, match="not the subject"):
        export_bundle(chain.rpc_url, chain.deployment, _hex(_sha(MANIFEST_ITEMS[2])),
                      merkle_proof=scenario.batch_proof_file)  # fmt: skip
    wrong = dict(scenario.batch_proof, value=[_hex(_sha(MANIFEST_ITEMS[4])), 3])
    with pytest.raises(EvidenceExportError, match="Merkle"):
        export_bundle(chain.rpc_url, chain.deployment, _hex(_sha(MANIFEST_ITEMS[4])), merkle_proof=wrong)


def test_export_without_block_receipts_methods_gives_the_same_bundle(
    chain: Chain, invoice_bundle: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node without eth_getBlockReceipts / eth_getRawTransactionByBlockNumberAndIndex: per-transaction reads."""
    from ledger_api.chain.events import JsonRpc
    from ledger_api.errors import LogQueryError

    missing = {"eth_getBlockReceipts", "eth_getRawTransactionByBlockNumberAndIndex"}
    used: set[str] = set()
    call, batch = JsonRpc.call, JsonRpc.batch

    def no_call(self: JsonRpc, method: str, params: Any = ()) -> Any:
        used.add(method)
        if method in missing:
            raise LogQueryError(f"{method} failed: Method not found")
        return call(self, method, params)

    def no_batch(self: JsonRpc, calls_: Any) -> list[Any]:
        used.update(m for m, _ in calls_)
        if any(m in missing for m, _ in calls_):
            raise LogQueryError("Method not found")
        return batch(self, calls_)

    monkeypatch.setattr(JsonRpc, "call", no_call)
    monkeypatch.setattr(JsonRpc, "batch", no_batch)
    last = int(invoice_bundle["blocks"][-1]["header"]["number"], 16)
    again = export_bundle(chain.rpc_url, chain.deployment, invoice_bundle["subject"]["sha256"], to_block=last)
    assert {"eth_getTransactionReceipt", "eth_getRawTransactionByHash"} <= used
    assert canonical_bundle(again) == canonical_bundle(invoice_bundle)


def test_an_amended_declaration_and_its_successor(chain: Chain, scenario: Scenario) -> None:
    first, second = (_hex(x) for x in scenario.amended)
    old = verify_bundle_of(chain, first).facts["declaration"]
    new = verify_bundle_of(chain, second).facts["declaration"]
    assert old["status"] == "SUPERSEDED" and old["superseded_by"] == second
    assert new["version"] == 2 and new["previous_id"] == first and new["mrn"] == old["mrn"] is not None
    assert new["jurisdiction"]["code"] == old["jurisdiction"]["code"] == "NL-RTM-CUSTOMS"


def test_every_declaration_of_a_random_history_verifies_against_storage(chain: Chain, scenario: Scenario) -> None:
    """Step 9 compares each derived declaration and stamp with the contract's storage at the last block:
    a derivation that got any status, channel, MRN-carrying amendment or revocation wrong fails here."""
    assert len(scenario.random_declarations) >= 4
    statuses = set()
    for declaration in scenario.random_declarations:
        report = verify_bundle_of(chain, _hex(declaration))
        assert report.storage_slots >= 1
        statuses.add(report.facts["declaration"]["status"])
    assert len(statuses) >= 2, statuses


def verify_bundle_of(chain: Chain, sha256: str) -> Any:
    """Export the bundle of ``sha256`` and verify it offline against its last block."""
    bundle = export_bundle(chain.rpc_url, chain.deployment, sha256)
    return verify_bundle(canonical_bundle(bundle), trusted_block=_trusted(bundle))


def test_an_export_that_would_not_verify_is_refused(
    chain: Chain, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter verifies what it wrote: a bundle missing a block the blooms ask for is never handed out."""
    from ledger_api.audit import _evidence

    original, skipped = _evidence.needs_contents, []

    def skip_first(header: Any, *args: Any) -> bool:
        wanted = original(header, *args)
        if wanted and not skipped:
            skipped.append(header["number"])
            return False
        return wanted

    monkeypatch.setattr(_evidence, "needs_contents", skip_first)
    with pytest.raises(EvidenceExportError, match=r"does not verify.*step 7 \(completeness\)"):
        export_bundle(chain.rpc_url, chain.deployment, _hex(scenario.declaration))
    assert skipped


def test_not_anchored_is_refused_at_export(chain: Chain, scenario: Scenario) -> None:
    with pytest.raises(EvidenceExportError, match="not anchored"):
        export_bundle(chain.rpc_url, chain.deployment, _hex(h("never anchored")))


def test_a_tampered_document_and_a_wrong_trusted_block_fail(invoice_bundle: dict[str, Any]) -> None:
    data = canonical_bundle(invoice_bundle)
    with pytest.raises(EvidenceInvalid) as failed:
        verify_bundle(data, trusted_block=_trusted(invoice_bundle), document=INVOICE.replace(b"1200", b"1300"))
    assert failed.value.step == 13
    earlier = header_hash(invoice_bundle["blocks"][-2]["header"])
    for trusted in (earlier, "0x" + "11" * 32):
        with pytest.raises(EvidenceInvalid) as failed:
            verify_bundle(data, trusted_block=trusted)
        assert failed.value.step == 3


def test_the_eip712_check_recovers_the_signer_from_the_relay_transaction(
    invoice_bundle: dict[str, Any], scenario: Scenario
) -> None:
    """Step 10 on its own: a relayed stamp credited to another signer (or with other fields) is refused.

    (A changed signature in the bundle already fails at step 4 — it is inside the raw transaction.)"""
    from ledger_api.verify import evidence

    proven = evidence._prove_chain(invoice_bundle, _trusted(invoice_bundle))
    facts, _ = evidence.derive(invoice_bundle, proven=proven)
    assert evidence._check_relayed_stamps(invoice_bundle, proven, facts) == 1
    relayed = next(s for s in facts["stamps"] if s["stamp_id"] == _hex(scenario.relayed_stamp))
    for change in ({"signer": "0x" + "44" * 20}, {"result": 2}, {"signed_at": relayed["signed_at"] + 1}):
        forged = copy.deepcopy(facts)
        next(s for s in forged["stamps"] if s["stamp_id"] == relayed["stamp_id"]).update(change)
        with pytest.raises(EvidenceInvalid) as failed:
            evidence._check_relayed_stamps(invoice_bundle, proven, forged)
        assert failed.value.step == 10


def test_the_trusted_deployment_is_enforced_when_given(chain: Chain, invoice_bundle: dict[str, Any]) -> None:
    data, trusted = canonical_bundle(invoice_bundle), _trusted(invoice_bundle)
    known = TrustedDeployment.of(chain.deployment)
    assert verify_bundle(data, trusted_block=trusted, deployment=known).ledger == known.ledger
    for other in (
        TrustedDeployment(chain_id=1, registry=known.registry, ledger=known.ledger,
                          deployment_block=known.deployment_block),
        TrustedDeployment(chain_id=known.chain_id, registry=known.registry, ledger="0x" + "22" * 20,
                          deployment_block=known.deployment_block),
        TrustedDeployment(chain_id=known.chain_id, registry=known.registry, ledger=known.ledger,
                          deployment_block=known.deployment_block + 1),
    ):  # fmt: skip
        with pytest.raises(EvidenceInvalid) as failed:
            verify_bundle(data, trusted_block=trusted, deployment=other)
        assert failed.value.step == 3


def test_the_zip_variant_round_trips(invoice_bundle: dict[str, Any]) -> None:
    archive = bundle_zip(invoice_bundle, document=INVOICE, document_name="invoice.pdf")
    bundle, document = read_bundle_zip(archive)
    assert document == INVOICE
    assert verify_bundle(bundle, trusted_block=_trusted(invoice_bundle), document=document).document_checked
    with pytest.raises(EvidenceExportError):
        bundle_zip(invoice_bundle, document=PACKING)
    with pytest.raises(MalformedBundle):
        read_bundle_zip(archive[:-10])


# ------------------------------------------------------------------ mutations


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key in value:
            yield from _leaves(value[key], (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _leaves(item, (*path, n))
    else:
        yield path, value


def _mutated(value: Any) -> Any:
    """A different value of the same JSON kind (a changed hex digit keeps the hex form)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return "0x" + "00" * 32
    text = str(value)
    if text.startswith("0x") and len(text) > 2:
        last = text[-1]
        return text[:-1] + ("1" if last == "0" else "0") if text != "0x0" else "0x1"
    return text + "x"


@pytest.mark.slow
def test_every_single_field_mutation_fails(invoice_bundle: dict[str, Any]) -> None:
    trusted = _trusted(invoice_bundle)
    leaves = list(_leaves(invoice_bundle))
    assert len(leaves) > 500
    failed_steps: dict[int, int] = {}
    for path, value in leaves:
        mutated = copy.deepcopy(invoice_bundle)
        target = mutated
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = _mutated(value)
        with pytest.raises(EvidenceError) as failed:
            verify_bundle(canonical_bundle(mutated), trusted_block=trusted)
        failed_steps[failed.value.step] = failed_steps.get(failed.value.step, 0) + 1
    assert {1, 2, 3, 4, 5, 9, 11, 12} <= set(failed_steps), failed_steps  # several steps do the catching


@pytest.mark.slow
def test_random_byte_flips_fail(invoice_bundle: dict[str, Any]) -> None:
    data = canonical_bundle(invoice_bundle)
    trusted = _trusted(invoice_bundle)
    rng = random.Random(6)
    for _ in range(300):
        flipped = bytearray(data)
        position = rng.randrange(len(flipped))
        flipped[position] ^= 1 << rng.randrange(8)
        with pytest.raises(EvidenceError):
            verify_bundle(bytes(flipped), trusted_block=trusted)


def test_removing_a_block_s_contents_is_caught_by_the_blooms(invoice_bundle: dict[str, Any]) -> None:
    """Hiding any block's contents fails: at completeness (the bloom asks for it), or — for the block
    of the supporting document's anchor, whose sha256 is in log data, not in a topic — possibly at the
    subject (when no other proven event names that declaration or its declarant)."""
    anchor_block = invoice_bundle["facts"]["anchor"]["block"]
    for n, block in enumerate(invoice_bundle["blocks"]):
        if block["receipts"]:
            stripped = copy.deepcopy(invoice_bundle)
            stripped["blocks"][n]["transactions"] = stripped["blocks"][n]["receipts"] = None
            with pytest.raises(EvidenceInvalid) as failed:
                verify_bundle(canonical_bundle(stripped), trusted_block=_trusted(invoice_bundle))
            number = int(block["header"]["number"], 16)
            assert failed.value.step in ((7, 8) if number == anchor_block else (7,)), (number, failed.value)


def test_an_oversized_bundle_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger_api.errors import BundleTooLarge
    from ledger_api.verify import evidence

    monkeypatch.setattr(evidence, "MAX_BUNDLE_BYTES", 1000)
    with pytest.raises(BundleTooLarge):
        evidence.parse_bundle(b" " * 1001)


# ------------------------------------------------------------------ CLI


def test_cli_export_and_verify(chain: Chain, invoice_bundle: dict[str, Any], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from ledger_api.cli import main

    record = tmp_path / "deployment.json"
    chain.deployment.save(record)
    document = tmp_path / "invoice.pdf"
    document.write_bytes(INVOICE)
    out = tmp_path / "evidence.zip"
    sha = _hex(_sha(INVOICE))
    assert main(["evidence", "export", sha, "--rpc-url", chain.rpc_url, "--deployment", str(record), "--zip",
                 "--document", str(document), "-o", str(out)]) == 0  # fmt: skip
    bundle_bytes, _ = read_bundle_zip(out.read_bytes())
    trusted = header_hash(json.loads(bundle_bytes)["blocks"][-1]["header"])
    capsys.readouterr()
    assert main(["evidence", "verify", str(out), "--trusted-block", trusted, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["document_checked"] is True
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(INVOICE + b" ")
    assert main(["evidence", "verify", str(out), "--trusted-block", trusted, "--document", str(tampered)]) != 0
    err = capsys.readouterr().err
    assert "step 13 (document)" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ an independent client: cast


def _cast() -> str:
    path = Path(__file__).resolve().parents[3] / "node_modules" / ".bin" / "cast"
    found = str(path) if path.exists() else shutil.which("cast")
    if not found:
        pytest.fail("cast is not installed: run `npm ci` (package.json pins @foundry-rs/cast)")
    return found


def _run_cast(*args: str) -> str:
    return subprocess.run([_cast(), *args], check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def test_cast_agrees_with_the_bundle(chain: Chain, invoice_bundle: dict[str, Any]) -> None:
    facts = invoice_bundle["facts"]
    rpc = ["--rpc-url", chain.rpc_url]
    # The anchoring transaction's receipt: its block and status.
    receipt = json.loads(_run_cast("receipt", facts["anchor"]["tx"], "--json", *rpc))
    assert int(receipt["blockNumber"], 16) == facts["anchor"]["block"] and int(receipt["status"], 16) == 1
    number = facts["anchor"]["block"]
    block = next(b for b in invoice_bundle["blocks"] if int(b["header"]["number"], 16) == number)
    assert receipt["logsBloom"].lower() == block["receipts"][int(receipt["transactionIndex"], 16)]["logsBloom"]
    # The block hash cast reports is the one the bundle's header hashes to.
    assert _run_cast("block", str(number), "--field", "hash", *rpc).lower() == header_hash(block["header"])
    # Every StampRecorded of the declaration, from cast logs.
    declaration = facts["declaration"]["declaration_id"]
    logs = json.loads(_run_cast(
        "logs", "--from-block", str(invoice_bundle["deployment_block"]), "--to-block", "latest", "--address",
        invoice_bundle["contracts"]["ledger"],
        "StampRecorded(bytes32 indexed,bytes32 indexed,uint32 indexed,address,uint8,uint8,uint64,bytes,address)",
        "", declaration, "--json", *rpc))  # fmt: skip
    assert sorted(log["topics"][1].lower() for log in logs) == sorted(s["stamp_id"] for s in facts["stamps"])
    # The contract's own view of the document's anchor and of the declaration's status.
    ledger, at = (
        invoice_bundle["contracts"]["ledger"],
        ["--block", str(int(invoice_bundle["blocks"][-1]["header"]["number"], 16))],
    )
    anchor = _run_cast("call", ledger, "anchorOf(bytes32)(uint8,bytes32)", invoice_bundle["subject"]["sha256"],
                       *at, *rpc).split()  # fmt: skip
    assert anchor == ["2", declaration]  # SUPPORTING_DOCUMENT, owned by the declaration
    view = _run_cast("call", ledger, "declaration(bytes32)((address,uint32,uint8,uint8,uint16,uint32,bytes32,"
                     "bytes32,bytes32,bytes32))", declaration, *at, *rpc)  # fmt: skip
    fields = [f.strip() for f in view.strip("()").split(",")]
    d = facts["declaration"]
    assert fields[0].lower() == d["declarant"] and int(fields[1]) == d["jurisdiction"]["index"]
    assert int(fields[2]) == 3 and d["status"] == "RELEASED"
    assert int(fields[3]) == d["channel"] and int(fields[4]) == d["required_stamps"] and fields[6] == d["mrn"]
    for stamp in facts["stamps"]:
        key = _run_cast("call", invoice_bundle["contracts"]["registry"],
                        "signerKey(address)((uint32,uint64,uint64,uint64))", stamp["signer"], *at, *rpc)  # fmt: skip
        numbers = [int(f.strip().split()[0]) for f in key.strip("()").split(",")]
        assert numbers == [stamp["key"][k] for k in ("agency_index", "valid_from", "valid_until", "compromised_at")]
