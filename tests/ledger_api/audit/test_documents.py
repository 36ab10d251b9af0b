"""The replay's document check on a real chain with the embedded store: every anchored document is fetched
and re-verified; missing, tampered and mis-committed documents and an unreachable store are error findings."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import pytest

from ledger_api._cli import audit as audit_cli
from ledger_api.api.writes import DocumentVault
from ledger_api.audit import AnchoredDocument, DeclarationReader, DocumentCheck, anchored_documents, replay
from ledger_api.audit._documents import manifest_root
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.chain.events import JsonRpc
from ledger_api.documents import (
    AgencyPrivateKey,
    AgencyPublicKey,
    Cid,
    ContentStore,
    DocumentBatch,
    LazyIpfsStore,
    LocalStore,
    StandardMerkleTree,
    VaultKeyrings,
    cid_of,
)
from ledger_api.hashing import canonical_json
from ledger_api.verify.risk import MAX_RULE_SET_BYTES, RULE_SET_BATCH_KIND, parse_rule_set
from oracles.risk import DEFAULT_RULES
from tests._support.ipfs import free_port
from tests.oracles.conftest import Ledger, ledger  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

TJ = "CN-TJ-CUSTOMS"
LAB = "CN-TJ-CIQ-LAB"
TRADER = "trader-tj-electronics"


def _cid_bytes(cid: str) -> bytes:
    return Cid.parse(cid).to_bytes()


class _Anchors:
    """Stores documents in the embedded store (envelopes through the API's vault) and anchors them."""

    def __init__(self, ledger: Ledger, store: ContentStore) -> None:  # noqa: F811
        self.ledger, self.store = ledger, store
        self.vault = DocumentVault(ledger.settings.var_dir / "api" / "documents.db", store)
        self.client = ledger.client
        self.n = 0

    def declaration(self, *, stored_plaintext: bytes | None = None, documents: tuple[bytes, ...] = ()) -> bytes:
        """Anchor a declaration whose envelope (sealed for TJ) holds its plaintext — or ``stored_plaintext``."""
        self.n += 1
        plaintext = canonical_json({"jurisdiction": TJ, "local_reference": f"LRN-{self.n}", "goods": []})
        commitment = hashlib.sha256(plaintext).digest()
        key = AgencyPublicKey.from_hex(self.ledger.deployment.agencies[TJ].encryption_public_key)
        envelope = self.vault.seal_and_store(stored_plaintext or plaintext, recipients={TJ: key}, sha256=commitment)
        refs = [
            calls.SupportingDocumentRef(
                document_type=1, sha256=hashlib.sha256(d).digest(), cid=_cid_bytes(self.store.put(d).cid)
            )
            for d in documents
        ]
        self.client.wait(
            self.client.submit_declaration(
                signer=self.ledger.address(TRADER),
                jurisdiction_id=agency_id_bytes(TJ),
                local_reference=hashlib.sha256(f"LRN-{self.n}".encode()).digest(),
                commitment=commitment,
                cid=envelope.cid_bytes(),
                documents=refs,
            )
        )
        return commitment

    def stamp(self, declaration_id: bytes, report: bytes) -> None:
        """Accept the declaration and record a stamp whose report is stored."""
        signer = self.ledger.address(f"{TJ.lower()}-signer-0")
        self.client.wait(
            self.client.accept_declaration(
                signer=signer, declaration_id=declaration_id, mrn=hashlib.sha256(declaration_id).digest()
            )
        )
        self.client.wait(
            self.client.record_stamp(
                signer=self.ledger.address(f"{LAB.lower()}-signer-0"),
                declaration_id=declaration_id,
                stamp_type=3,
                result=1,
                report_sha256=hashlib.sha256(report).digest(),
                report_cid=_cid_bytes(self.store.put(report).cid),
            )
        )

    def batch(self, manifest: bytes, *, root: bytes, leaves: int, store: bool = True) -> int:
        """Anchor a batch whose manifest is (or is not) stored; returns the block."""
        cid = self.store.put(manifest).cid if store else cid_of(manifest)
        receipt = self.client.wait(
            self.client.anchor_batch(
                signer=self.ledger.address(f"{LAB.lower()}-signer-0"),
                root=root,
                leaf_count=leaves,
                kind=1,
                manifest_cid=_cid_bytes(cid),
            )
        )
        return int(receipt.block_number)


def _tree(n: int) -> StandardMerkleTree:
    return StandardMerkleTree.of(
        [(i, hashlib.sha256(f"parcel-{n}-{i}".encode()).digest()) for i in range(5)], ["uint256", "bytes32"]
    )


def _codes(findings: list[dict[str, object]]) -> list[str]:
    return sorted(str(f["code"]) for f in findings if str(f["code"]).startswith("document-"))


def test_documents_are_fetched_and_reverified(ledger: Ledger, tmp_path: Path) -> None:  # noqa: F811
    store = LocalStore(ledger.settings.var_dir / "store")
    anchors = _Anchors(ledger, store)
    rpc = ledger.settings.effective_rpc_url
    reader = DeclarationReader(
        agency=TJ,
        private_key=AgencyPrivateKey(ledger.keystore.encryption_key(TJ.lower())),
        keyrings=VaultKeyrings.for_settings(ledger.settings),
    )

    # a clean history: an envelope, two plain supporting documents, a stamp report, a standard-v1 manifest
    good = anchors.declaration(documents=(b"invoice 1", b"packing list 1"))
    anchors.stamp(good, b"lab report 1")
    tree = _tree(1)
    clean_block = anchors.batch(json.dumps(tree.dump()).encode(), root=bytes.fromhex(tree.root[2:]), leaves=len(tree))
    clean = replay(
        rpc,
        ledger.deployment,
        to_block=clean_block,
        compare_views=True,
        progress=None,
        document_check=DocumentCheck({"embedded": store}, reader=reader),
    )
    assert clean.ok, [f.to_json() for f in clean.errors]
    summary = clean.checks["document-fetch"]
    assert summary["by_kind"] == {"batch-manifest": 1, "declaration": 1, "stamp-report": 1, "supporting-document": 2}
    assert summary["outcomes"] == {"ok": 5} and summary["commitments"] == {"verified": 5}
    assert "document-fetch" not in clean.checks_skipped
    without = replay(rpc, ledger.deployment, to_block=clean_block, progress=None)
    assert "document-fetch" in without.checks_skipped and "document-fetch" not in without.checks

    # the bad cases
    mismatched = anchors.declaration(stored_plaintext=b'{"not":"the anchored declaration"}')
    other = _tree(2)
    anchors.batch(json.dumps(other.dump()).encode(), root=hashlib.sha256(b"another root").digest(), leaves=len(other))
    anchors.batch(b"a manifest nobody stored", root=hashlib.sha256(b"lost").digest(), leaves=3, store=False)
    tampered_doc = b"certificate of origin " * 40
    anchors.declaration(documents=(tampered_doc,))
    block_file = store._block_path(Cid.parse(cid_of(tampered_doc)))  # noqa: SLF001
    block_file.write_bytes(block_file.read_bytes()[:-1] + b"!")

    stream = io.StringIO()
    check = DocumentCheck({"embedded": store}, reader=reader, progress=stream)
    report = replay(rpc, ledger.deployment, progress=None, document_check=check)
    assert not report.ok
    found = [f.to_json() for f in report.findings]
    assert _codes(found) == [
        "document-commitment-mismatch",
        "document-commitment-mismatch",
        "document-missing",
        "document-tampered",
    ]
    by_code = {f["code"]: f for f in found}
    assert by_code["document-tampered"]["details"]["sha256"] == "0x" + hashlib.sha256(tampered_doc).hexdigest()
    assert by_code["document-tampered"]["event"] == "DeclarationSubmitted" and by_code["document-tampered"]["block"]
    assert by_code["document-missing"]["details"]["kind"] == "batch-manifest"
    mismatch_kinds = sorted(f["details"]["kind"] for f in found if f["code"] == "document-commitment-mismatch")
    assert mismatch_kinds == ["batch-manifest", "declaration"]
    assert any(f["details"]["sha256"] == "0x" + mismatched.hex() for f in found)
    summary = report.checks["document-fetch"]
    assert summary["checked"] == len(anchored_documents(report.state)) == 10
    assert summary["outcomes"] == {"commitment-mismatch": 2, "missing": 1, "ok": 6, "tampered": 1}
    assert report.to_json()["summary"]["by_code"]["document-missing"] == 1
    last_line = stream.getvalue().strip().splitlines()[-1]
    assert last_line.startswith("audit documents: 10/10") and "documents/s" in last_line and "ETA" in last_line

    # without the key no envelope can be opened (three declarations): unchecked, neither passed nor a mismatch
    blind = replay(rpc, ledger.deployment, progress=None, document_check=DocumentCheck({"embedded": store}))
    assert blind.checks["document-fetch"]["commitments"] == {"mismatch": 1, "unchecked": 3, "verified": 4}
    assert _codes([f.to_json() for f in blind.findings]).count("document-commitment-mismatch") == 1  # the manifest

    # an unreachable store is an error even when another store answers for every document
    dead = f"/ip4/127.0.0.1/tcp/{free_port()}"
    with_dead = replay(
        rpc,
        ledger.deployment,
        progress=None,
        document_check=DocumentCheck({"embedded": store, dead: LazyIpfsStore(dead)}, reader=reader),
    )
    unavailable = [f for f in with_dead.findings if f.code == "document-store-unavailable"]
    assert len(unavailable) == 1 and unavailable[0].details["store"] == dead
    assert with_dead.checks["document-fetch"]["stores"][dead].startswith("unavailable")
    only_dead = replay(rpc, ledger.deployment, progress=None, document_check=DocumentCheck({dead: LazyIpfsStore(dead)}))
    assert not only_dead.ok and {f.code for f in only_dead.findings} >= {"document-store-unavailable"}
    assert only_dead.checks["document-fetch"]["outcomes"] == {"unchecked": 10}
    assert "document-missing" not in only_dead.codes()

    # the command: --documents with --store and --agency; non-zero exit, counts in the JSON report
    with JsonRpc(rpc_url=rpc) as client:
        head = client.block_number()
    out = tmp_path / "report.json"
    parser = argparse.ArgumentParser()
    audit_cli.register(parser.add_subparsers(dest="command"))
    monkey = pytest.MonkeyPatch()
    try:
        monkey.setenv("LEDGER_VAR_DIR", str(ledger.settings.var_dir))
        monkey.setenv("LEDGER_ANVIL_PORT", str(ledger.settings.anvil_port))
        args = parser.parse_args(
            [
                "audit",
                "replay",
                "--deployment",
                str(ledger.settings.var_dir / "deployment.json"),
                "--rpc-url",
                rpc,
                "--to-block",
                str(head),
                "--report",
                str(out),
                "--quiet",
                "--no-channel-check",
                "--documents",
                "--store",
                str(store.root),
                "--agency",
                TJ,
            ]
        )
        assert args.handler(args) == audit_cli.EXIT_FINDINGS
        data = json.loads(out.read_text())
        assert data["checks"]["document-fetch"]["outcomes"] == summary["outcomes"]
        assert data["summary"]["by_code"]["document-tampered"] == 1
    finally:
        monkey.undo()


def _manifest(root: str, *, kind: int, leaves: int = 5) -> AnchoredDocument:
    return AnchoredDocument(
        kind="batch-manifest",
        sha256=root,
        cid="0x01",
        ref=root,
        block=1,
        event="BatchAnchored",
        batch_kind=kind,
        leaf_count=leaves,
    )


def test_manifest_roots_are_rederived_where_the_format_allows() -> None:
    rules = json.dumps(DEFAULT_RULES).encode()
    root = "0x" + parse_rule_set(rules).hash.hex()
    assert manifest_root(_manifest(root, kind=RULE_SET_BATCH_KIND), rules)[0] == "verified"
    other = "0x" + hashlib.sha256(b"other").hexdigest()
    assert manifest_root(_manifest(other, kind=RULE_SET_BATCH_KIND), rules)[0] == "mismatch"
    assert manifest_root(_manifest(root, kind=RULE_SET_BATCH_KIND), b"{not json")[0] == "mismatch"
    oversized = b" " * (MAX_RULE_SET_BYTES + 1)
    assert manifest_root(_manifest(root, kind=RULE_SET_BATCH_KIND), oversized)[0] == "mismatch"
    tree = _tree(7)
    dump = json.dumps(tree.dump()).encode()
    assert manifest_root(_manifest(tree.root, kind=1, leaves=len(tree)), dump)[0] == "verified"
    assert manifest_root(_manifest(tree.root, kind=1, leaves=len(tree) + 1), dump)[0] == "mismatch"
    broken = tree.dump()
    broken["tree"][0] = "0x" + "00" * 32
    assert manifest_root(_manifest(tree.root, kind=1), json.dumps(broken).encode())[0] == "mismatch"
    assert manifest_root(_manifest(tree.root, kind=1), b"parcel list, CSV")[0] == "root-unchecked"
    # a `ledger batch anchor` manifest (DocumentBatch)
    batch = DocumentBatch.build([hashlib.sha256(bytes([i])).digest() for i in range(5)], kind=3)
    assert manifest_root(_manifest(batch.root, kind=3, leaves=5), batch.manifest())[0] == "verified"
    assert manifest_root(_manifest(batch.root, kind=3, leaves=6), batch.manifest())[0] == "mismatch"
    forged = json.loads(batch.manifest())
    forged["tree"]["values"][1]["value"] = ["0x" + "ab" * 32]
    assert manifest_root(_manifest(batch.root, kind=3), json.dumps(forged).encode())[0] == "mismatch"


@pytest.mark.slow
def test_documents_fetched_from_a_real_ipfs_node(ledger: Ledger, tmp_path: Path) -> None:  # noqa: F811
    from tests._support.ipfs import start_daemons, stop_all, stop_daemon

    (daemon,) = start_daemons(tmp_path / "ipfs", ["auditor-node"])
    try:
        anchors = _Anchors(ledger, daemon.store)
        anchors.declaration(documents=(b"invoice on ipfs", b"packing list on ipfs"))
        tree = _tree(3)
        anchors.batch(json.dumps(tree.dump()).encode(), root=bytes.fromhex(tree.root[2:]), leaves=len(tree))
        rpc = ledger.settings.effective_rpc_url
        empty = LocalStore(tmp_path / "empty-store")
        report = replay(
            rpc,
            ledger.deployment,
            progress=None,
            document_check=DocumentCheck({daemon.api: daemon.store, "empty": empty}),
        )
        assert report.ok, [f.to_json() for f in report.errors]
        summary = report.checks["document-fetch"]
        assert summary["outcomes"] == {"ok": 4} and summary["copies"] == {"absent": 4, "ok": 4}
        # the command with --ipfs; then the node goes away: every document unchecked, the store an error
        out = tmp_path / "report.json"
        parser = argparse.ArgumentParser()
        audit_cli.register(parser.add_subparsers(dest="command"))
        base = [
            "audit",
            "replay",
            "--deployment",
            str(ledger.settings.var_dir / "deployment.json"),
            "--rpc-url",
            rpc,
            "--report",
            str(out),
            "--quiet",
            "--no-channel-check",
            "--documents",
            "--ipfs",
            daemon.api,
        ]
        monkey = pytest.MonkeyPatch()
        try:
            monkey.setenv("LEDGER_VAR_DIR", str(ledger.settings.var_dir))
            args = parser.parse_args(base)
            assert args.handler(args) == 0
            assert json.loads(out.read_text())["checks"]["document-fetch"]["outcomes"] == {"ok": 4}
            stop_daemon(daemon)
            args = parser.parse_args(base)
            assert args.handler(args) == audit_cli.EXIT_FINDINGS
            data = json.loads(out.read_text())
            assert data["checks"]["document-fetch"]["outcomes"] == {"unchecked": 4}
            assert data["summary"]["by_code"] == {"document-store-unavailable": 1}
        finally:
            monkey.undo()
    finally:
        stop_all([daemon])
