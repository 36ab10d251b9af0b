"""1,000 random single-bit flips across stored blocks, envelopes, key wraps and commitments: every
one is detected, and none yields bytes that pass for the original.

Where each check lives: the content store re-hashes every block it returns against its CID
(:class:`IntegrityError` naming the CID); an envelope is AES-256-GCM authenticated, header
included (:class:`TamperedEnvelope` / :class:`UnsupportedEnvelope`); a key wrap is itself AES-GCM
under an X25519-derived key bound to the document and agency (:class:`DecryptionError` family); a
commitment is the anchored sha256 of the plaintext, and a salted field disclosure must lead to the
anchored root (:class:`ProofError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

import pytest

from ledger_api.documents import CHUNK_SIZE, AgencyPrivateKey, Cid, LocalStore, open_envelope, seal
from ledger_api.errors import DocumentError, EnvelopeError, IntegrityError, ProofError
from ledger_api.hashing import Disclosure, SaltedFieldTree, verify_disclosure

FLIPS = 1000
AGENCY = "CN-TJ-CUSTOMS"


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.faults
def test_every_single_bit_flip_is_detected(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    store = LocalStore(tmp_path / "store")
    key = AgencyPrivateKey.generate()
    documents = []
    for n, size in enumerate((17, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 12_345)):
        plaintext = rng.randbytes(size)
        sealed = seal(plaintext, document_id=f"doc-{n}", recipients={AGENCY: key.public_key})
        cid = store.put(sealed.envelope).cid
        documents.append(
            (plaintext, sealed, cid, [p for p in (tmp_path / "store" / "blocks").rglob("*") if p.is_file()])
        )
    block_files = sorted({p for *_, files in documents for p in files})
    tree = SaltedFieldTree.commit({"hs_code": "850440", "origin": "CN", "value": 12000, "consignee": "ACME BV"})
    disclosure_json = tree.disclose(["hs_code", "origin"]).to_json()

    detected: dict[str, int] = {"block": 0, "envelope": 0, "wrap": 0, "commitment": 0, "disclosure": 0}
    for _ in range(FLIPS):
        target = rng.choice(list(detected))
        plaintext, sealed, cid, _files = rng.choice(documents)
        if target == "block":  # a bit of a block file on disk, under any document
            path = rng.choice(block_files)
            original = path.read_bytes()
            path.write_bytes(_flip(original, rng.randrange(len(original) * 8)))
            try:
                failures = 0
                for _p, _s, each_cid, _f in documents:
                    try:
                        store.read(each_cid)
                    except IntegrityError as exc:
                        assert exc.cid and Cid.parse(exc.cid)  # names the block that failed
                        failures += 1
                assert failures >= 1, f"flip in {path.name} went unnoticed"
            finally:
                path.write_bytes(original)
        elif target == "envelope":  # the envelope as fetched (header, nonce, ciphertext or tag)
            bad = _flip(sealed.envelope, rng.randrange(len(sealed.envelope) * 8))
            with pytest.raises(EnvelopeError):
                open_envelope(bad, sealed.keyring, agency_id=AGENCY, private_key=key)
        elif target == "wrap":  # the agency's key wrap (ephemeral key, nonce or wrapped key)
            wrap = sealed.keyring.wraps[0]
            name = rng.choice(["ephemeral_public_key", "nonce", "wrapped_key"])
            raw = bytes.fromhex(getattr(wrap, name))
            bad_wrap = dataclasses.replace(wrap, **{name: _flip(raw, rng.randrange(len(raw) * 8)).hex()})
            keyring = dataclasses.replace(sealed.keyring, wraps=(bad_wrap,))
            with pytest.raises(DocumentError):
                open_envelope(sealed.envelope, keyring, agency_id=AGENCY, private_key=key)
        elif target == "commitment":  # the anchored sha256 no longer matches the decrypted bytes
            anchored = _flip(sealed.commitment, rng.randrange(256))
            opened = open_envelope(sealed.envelope, sealed.keyring, agency_id=AGENCY, private_key=key)
            assert opened == plaintext and hashlib.sha256(opened).digest() != anchored
        else:  # a disclosed field, salt or proof node (JSON-level bit flips that still parse)
            raw = disclosure_json.encode()
            bad_json = _flip(raw, rng.randrange(len(raw) * 8)).decode("utf-8", "replace")
            try:
                disclosed = Disclosure.from_json(bad_json)
                verified = verify_disclosure(disclosed, tree.root)
            except ProofError:
                pass
            else:  # the flip hit formatting only (e.g. whitespace / key order irrelevant): same facts
                assert verified == {"hs_code": "850440", "origin": "CN"}, bad_json
        detected[target] += 1
    assert sum(detected.values()) == FLIPS and min(detected.values()) > 100, detected
    for _p, _s, cid, _f in documents:  # everything restored intact
        store.read(cid)
