"""Tests for ledger_api.hashing: sha256 commitments, RFC 8785 JCS, salted field commitments."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_api.errors import CanonicalizationError, DocumentTooLarge, ProofError
from ledger_api.hashing import (
    Disclosure,
    SaltedFieldTree,
    _mth,
    _path,
    _root_from_path,
    canonical_json,
    declaration_commitment,
    sha256_bytes,
    sha256_stream,
    verify_disclosure,
)

# --- sha256 ----------------------------------------------------------------------------------


def test_sha256_stream_matches_hashlib_across_chunkings() -> None:
    payload = bytes(range(256)) * 5000
    expected = hashlib.sha256(payload).digest()
    assert sha256_bytes(payload) == expected
    assert sha256_stream(io.BytesIO(payload)) == expected
    assert sha256_stream(io.BytesIO(payload), chunk_size=7) == expected
    assert sha256_stream([payload[:10], payload[10:]]) == expected
    assert sha256_stream(io.BytesIO(b"")) == hashlib.sha256(b"").digest()


def test_sha256_stream_refuses_oversize_before_reading_everything() -> None:
    reads = []

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return b"x" * n

    with pytest.raises(DocumentTooLarge) as err:
        sha256_stream(Endless(), max_size=10_000, chunk_size=4096)
    assert err.value.limit == 10_000
    assert "10000" in str(err.value)
    assert len(reads) == 3  # 12 KiB read, never the whole (infinite) stream


def test_sha256_stream_accepts_exactly_the_limit() -> None:
    assert (
        sha256_stream(io.BytesIO(b"a" * 100), max_size=100) == hashlib.sha256(b"a" * 100).digest()
    )


# --- RFC 8785 ------------------------------------------------------------------------------------


def test_jcs_rfc8785_section_3_2_2_example() -> None:
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_jcs_rfc8785_property_sorting_by_utf16_code_units() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = list(json.loads(canonical_json(value)))
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("ieee_hex", "expected"),
    [  # RFC 8785 Appendix B
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_jcs_rfc8785_number_vectors(ieee_hex: str, expected: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(ieee_hex))
    assert canonical_json(number) == expected.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: "x"}, {"a": object()}, 2**60])
def test_jcs_refuses_values_without_canonical_form(bad: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(bad)


def test_declaration_commitment_ignores_key_order_and_whitespace() -> None:
    a = json.loads('{"lrn": "LRN-1", "items": [{"hs": "0901", "qty": 2}], "value": 10.5}')
    b = json.loads('{ "value" : 10.50, "items":[{"qty":2,"hs":"0901"}], "lrn":"LRN-1" }')
    assert declaration_commitment(a) == declaration_commitment(b)
    assert declaration_commitment(a) == hashlib.sha256(canonical_json(a)).digest()
    assert declaration_commitment(a) != declaration_commitment({**a, "value": 10.6})


# --- selective disclosure ------------------------------------------------------------------

DECLARATION = {
    "lrn": "LRN-2026-0001",
    "exporter": "ACME Trading GmbH",
    "consignee": "Tianjin Imports Ltd",
    "hsCode": "090111",
    "origin": "BR",
    "invoiceValue": 125000.5,
    "currency": "EUR",
    "items": [{"line": 1, "qty": 200}],
}


def test_disclosed_fields_verify_and_hidden_fields_stay_hidden() -> None:
    committed = SaltedFieldTree.commit(DECLARATION)
    disclosure = committed.disclose(["origin", "hsCode"])
    assert verify_disclosure(disclosure, committed.root) == {"origin": "BR", "hsCode": "090111"}
    wire = disclosure.to_json()
    for hidden in ("ACME", "Tianjin", "125000", "LRN-2026"):
        assert hidden not in wire
    # the round-tripped disclosure verifies too (what a partner agency receives)
    assert (
        verify_disclosure(Disclosure.from_json(wire), "0x" + committed.root.hex())["origin"] == "BR"
    )


def test_salts_are_fresh_and_at_least_128_bits() -> None:
    a = SaltedFieldTree.commit(DECLARATION)
    b = SaltedFieldTree.commit(DECLARATION)
    assert a.root != b.root  # same fields, different salts: nothing to brute-force across records
    assert all(len(s) >= 16 for s in a.salts.values())
    assert len(set(a.salts.values())) == len(DECLARATION)
    with pytest.raises(ValueError, match="16 bytes"):
        SaltedFieldTree(fields={"a": 1}, salts={"a": b"short"})
    with pytest.raises(ValueError):
        SaltedFieldTree.commit({"a": 1}, salt_bytes=8)


def test_disclosure_for_another_commitment_is_a_proof_error() -> None:
    committed = SaltedFieldTree.commit(DECLARATION)
    other = SaltedFieldTree.commit(DECLARATION)
    with pytest.raises(ProofError) as err:
        verify_disclosure(committed.disclose(["origin"]), other.root)
    assert err.value.expected_root == "0x" + other.root.hex()


def test_altered_value_or_salt_or_index_fails() -> None:
    committed = SaltedFieldTree.commit(DECLARATION)
    disclosure = committed.disclose(["origin", "currency"])
    raw = json.loads(disclosure.to_json())
    for mutate in (
        lambda r: r["fields"][1].__setitem__("value", "CN"),
        lambda r: r["fields"][0].__setitem__("salt", "00" * 16),
        lambda r: r["fields"][0].__setitem__("index", r["fields"][0]["index"] + 1),
        lambda r: r["fields"][0].__setitem__("name", "origin2"),
        lambda r: r.__setitem__("fieldCount", r["fieldCount"] + 1),
        lambda r: r["fields"].append(dict(r["fields"][0])),
    ):
        tampered = json.loads(json.dumps(raw))
        mutate(tampered)
        with pytest.raises(ProofError):
            verify_disclosure(Disclosure.from_json(json.dumps(tampered)), committed.root)


def test_holder_state_round_trips() -> None:
    committed = SaltedFieldTree.commit(DECLARATION)
    restored = SaltedFieldTree.from_json(committed.to_json())
    assert restored.root == committed.root
    with pytest.raises(KeyError):
        committed.disclose(["nope"])


def test_field_values_must_be_canonicalizable() -> None:
    with pytest.raises(CanonicalizationError, match="'weight'"):
        SaltedFieldTree.commit({"weight": float("nan")})


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=1, max_value=40), data=st.data())
def test_rfc6962_paths_verify_for_every_index(size: int, data: st.DataObject) -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(size)]
    root = _mth(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = _path(index, leaves)
    assert _root_from_path(index, size, leaves[index], path) == root
    if size > 1:  # a path never verifies for a different position
        other = (index + 1) % size
        assert _root_from_path(other, size, leaves[index], path) != root


def test_rfc6962_known_shape_for_three_leaves() -> None:
    a, b, c = (hashlib.sha256(x).digest() for x in (b"a", b"b", b"c"))

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    assert _mth([a, b, c]) == node(node(a, b), c)
    assert _path(2, [a, b, c]) == [node(a, b)]
