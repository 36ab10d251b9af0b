"""The pure layer of evidence bundles: header hashes, tries, blooms, and the strict format (step 1)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_utils.crypto import keccak

from ledger_api.errors import BundleTooLarge, EvidenceInvalid, MalformedBundle
from ledger_api.verify import evidence
from ledger_api.verify.evidence import (
    FORMAT,
    bloom_may_contain,
    canonical_bundle,
    header_hash,
    parse_bundle,
    receipt_bytes,
    trie_root,
    verify_bundle,
)

#: anvil 1.7.1's genesis block as eth_getBlockByNumber returned it (Prague: requestsHash included).
GENESIS = {
    "parentHash": "0x" + "00" * 32,
    "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
    "miner": "0x" + "00" * 20,
    "stateRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "transactionsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "receiptsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "logsBloom": "0x" + "00" * 256,
    "difficulty": "0x0",
    "number": "0x0",
    "gasLimit": "0x1c9c380",
    "gasUsed": "0x0",
    "timestamp": "0x6b12f9e8",
    "extraData": "0x",
    "mixHash": "0x" + "00" * 32,
    "nonce": "0x0000000000000000",
    "baseFeePerGas": "0x3b9aca00",
    "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "blobGasUsed": "0x0",
    "excessBlobGas": "0x0",
    "parentBeaconBlockRoot": "0x" + "00" * 32,
    "requestsHash": "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}
GENESIS_HASH = "0x00b616dae10281aaa0fcb82b554f0d01b5739320f7fd7750dffc72bc7a21e6b6"
EMPTY_TRIE = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"


@pytest.mark.parametrize("argv", [["evidence"], ["evidence", "export"], ["evidence", "verify"]])
def test_every_evidence_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from ledger_api.cli import main

    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    assert "usage: ledger evidence" in capsys.readouterr().out


def test_header_hash_is_the_node_s_block_hash() -> None:
    assert header_hash(GENESIS) == GENESIS_HASH
    older = {k: v for k, v in GENESIS.items() if k != "requestsHash"}  # a Cancun header: one field fewer
    assert header_hash(older) != GENESIS_HASH
    with pytest.raises(MalformedBundle):  # trailing fields come as a prefix, never with a gap
        header_hash({k: v for k, v in GENESIS.items() if k != "blobGasUsed"})


def test_trie_roots() -> None:
    assert trie_root([]) == EMPTY_TRIE
    receipt = {"type": "0x2", "status": "0x1", "cumulativeGasUsed": "0x5208", "logsBloom": "0x" + "00" * 256,
               "logs": []}  # fmt: skip
    encoded = receipt_bytes(receipt)
    assert encoded[0] == 2 and len(encoded) > 256
    assert trie_root([encoded]) != trie_root([receipt_bytes({**receipt, "status": "0x0"})])


def test_bloom_has_no_false_negatives() -> None:
    bloom = bytearray(256)
    address = bytes.fromhex("7b11f4580023a08e8aeea27d67fc8c4be06f76b1")
    for n in (0, 2, 4):
        digest = keccak(address)
        bit = ((digest[n] << 8) | digest[n + 1]) & 2047
        bloom[255 - bit // 8] |= 1 << (bit % 8)
    assert bloom_may_contain(bytes(bloom), address)
    assert not bloom_may_contain(bytes(256), address)


def _bundle() -> dict[str, Any]:
    return {
        "format": FORMAT, "chain_id": 31337, "contracts": {"registry": "0x" + "11" * 20, "ledger": "0x" + "22" * 20},
        "deployment_block": 0, "subject": {"sha256": "0x" + "33" * 32, "batch": None},
        "blocks": [{"header": dict(GENESIS), "transactions": None, "receipts": None}], "state": None, "facts": {},
        "verdict": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(format="customs-ledger-evidence/2"), "unknown format"),
        (lambda b: b.update(extra=1), "unknown"),
        (lambda b: b["contracts"].update(ledger="0x" + "AB" * 20), "lowercase"),
        (lambda b: b["blocks"][0]["header"].update(gasUsed="0x00"), "canonical 0x quantity"),
        (lambda b: b["blocks"][0]["header"].update(nonce="0x00"), "8 bytes"),
        (lambda b: b["blocks"][0].update(transactions=[]), "go together"),
        (lambda b: b.update(chain_id=True), "non-negative integer"),
        (lambda b: b.update(blocks=[]), "not be empty"),
    ],
)
def test_the_format_is_strict(change: Any, message: str) -> None:
    bundle = _bundle()
    change(bundle)
    with pytest.raises(MalformedBundle, match=message) as failed:
        parse_bundle(canonical_bundle(bundle))
    assert failed.value.step == 1


def test_only_canonical_bytes_and_strict_json_are_read() -> None:
    data = canonical_bundle(_bundle())
    assert parse_bundle(data)["chain_id"] == 31337
    for variant in (data.rstrip(b"\n"), data.replace(b'{"blocks"', b'{ "blocks"', 1),
                    data.replace(b'"chain_id":31337', b'"chain_id":31337,"chain_id":31337'),
                    data.replace(b"31337", b"NaN")):  # fmt: skip
        with pytest.raises(MalformedBundle):
            parse_bundle(variant)


def test_a_parsed_bundle_must_be_json_too() -> None:
    for value in ({**_bundle(), "chain_id": float("nan")}, {**_bundle(), "facts": {"x": object()}}, [1]):
        with pytest.raises(MalformedBundle):
            verify_bundle(value, trusted_block=GENESIS_HASH)  # type: ignore[arg-type]


def test_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = canonical_bundle(_bundle())
    monkeypatch.setattr(evidence, "MAX_BUNDLE_BYTES", len(data) - 1)
    with pytest.raises(BundleTooLarge):
        parse_bundle(data)


def test_a_chain_without_the_subject_fails_at_the_subject_step() -> None:
    bundle = _bundle()
    with pytest.raises(EvidenceInvalid) as failed:
        verify_bundle(canonical_bundle(bundle), trusted_block=GENESIS_HASH)
    assert failed.value.step == 8
    broken = copy.deepcopy(bundle)
    broken["blocks"][0]["header"]["timestamp"] = "0x6b12f9e9"
    with pytest.raises(EvidenceInvalid) as failed:
        verify_bundle(canonical_bundle(broken), trusted_block=GENESIS_HASH)
    assert failed.value.step == 3
    with pytest.raises(EvidenceInvalid) as failed:
        verify_bundle(canonical_bundle(bundle), trusted_block="latest")
    assert failed.value.step == 3


def test_subject_topics_follow_a_long_amendment_chain_both_ways() -> None:
    """Every version of a 3,000-version amendment chain, its declarant and a stamp of the last version
    concern a document listed only by version 1 (the closure is a worklist: linear in the events)."""
    from ledger_api.chain.events import DecodedEvent
    from ledger_api.verify.evidence import subject_topics

    def word(n: int) -> str:
        return "0x" + n.to_bytes(32, "big").hex()

    declarant = "0x" + "ab" * 20
    document, stamp, unrelated = word(10**9), word(10**9 + 1), word(10**9 + 2)
    events = []
    for version in range(1, 3001):
        name = "DeclarationSubmitted" if version == 1 else "DeclarationAmended"
        args = {"declarationId": word(version), "declarant": declarant,
                "documents": [{"sha256": document}] if version == 1 else []}  # fmt: skip
        if version > 1:
            args["previousId"] = word(version - 1)
        events.append(DecodedEvent("ClearanceLedger", name, "0x0", version, "0x", "0x", 0, args))
    events.append(DecodedEvent("ClearanceLedger", "StampRecorded", "0x0", 3001, "0x", "0x", 0,
                               {"stampId": stamp, "declarationId": word(3000)}))  # fmt: skip
    events.append(DecodedEvent("ClearanceLedger", "DeclarationSubmitted", "0x0", 3002, "0x", "0x", 0,
                               {"declarationId": unrelated, "declarant": declarant, "documents": []}))  # fmt: skip
    words = subject_topics(events, document)
    assert {word(v) for v in range(1, 3001)} <= words and document in words
    assert "0x" + "00" * 12 + "ab" * 20 in words  # the declarant (alerts on the trader)
    assert unrelated not in words and stamp not in words  # the stamp names a version; it is not a subject
    assert subject_topics(events, stamp) >= {stamp, word(3000), word(1)}  # a stamp report leads to its chain
