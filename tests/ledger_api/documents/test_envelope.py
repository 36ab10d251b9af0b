"""Envelope encryption: seal once, wrap per agency, grant / revoke / shred, typed failures."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from ledger_api.documents import (
    ENVELOPE_MAGIC,
    AgencyPrivateKey,
    Keyring,
    LocalStore,
    cid_of,
    envelope_document_id,
    open_envelope,
    seal,
)
from ledger_api.errors import (
    AccessRevoked,
    DecryptionError,
    TamperedEnvelope,
    UnsupportedEnvelope,
    WrongKey,
)

PLAINTEXT = b"%PDF-1.7 certificate of origin no. BR-2026-77 ..." * 100


@pytest.fixture(scope="module")
def keys() -> dict[str, AgencyPrivateKey]:
    return {name: AgencyPrivateKey.generate() for name in ("CN-TJ-CUSTOMS", "BR-SANTOS-LAB", "DE-HH-CUSTOMS")}


def _sealed(keys: dict[str, AgencyPrivateKey], *agencies: str):  # type: ignore[no-untyped-def]
    return seal(
        PLAINTEXT,
        document_id="decl-1/coo",
        recipients={a: keys[a].public_key for a in agencies},
    )


def test_each_recipient_opens_and_the_commitment_is_the_plaintext_sha256(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS", "BR-SANTOS-LAB")
    assert sealed.commitment == hashlib.sha256(PLAINTEXT).digest()
    assert sealed.envelope.startswith(ENVELOPE_MAGIC + b"\x01")
    assert PLAINTEXT[:20] not in sealed.envelope
    assert envelope_document_id(sealed.envelope) == "decl-1/coo"
    for agency in ("CN-TJ-CUSTOMS", "BR-SANTOS-LAB"):
        assert open_envelope(sealed.envelope, sealed.keyring, agency_id=agency, private_key=keys[agency]) == PLAINTEXT
    with pytest.raises(AccessRevoked) as err:
        open_envelope(
            sealed.envelope,
            sealed.keyring,
            agency_id="DE-HH-CUSTOMS",
            private_key=keys["DE-HH-CUSTOMS"],
        )
    assert err.value.agency_id == "DE-HH-CUSTOMS"


def test_grant_rewraps_without_changing_the_envelope_or_its_cid(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS")
    before = cid_of(sealed.envelope)
    keyring = sealed.keyring.grant(
        envelope=sealed.envelope,
        holder_id="CN-TJ-CUSTOMS",
        holder_key=keys["CN-TJ-CUSTOMS"],
        agency_id="DE-HH-CUSTOMS",
        public_key=keys["DE-HH-CUSTOMS"].public_key,
    )
    assert keyring.agencies == ["CN-TJ-CUSTOMS", "DE-HH-CUSTOMS"]
    assert (
        open_envelope(sealed.envelope, keyring, agency_id="DE-HH-CUSTOMS", private_key=keys["DE-HH-CUSTOMS"])
        == PLAINTEXT
    )
    assert cid_of(sealed.envelope) == before
    # a non-holder cannot grant
    with pytest.raises(AccessRevoked):
        sealed.keyring.grant(
            envelope=sealed.envelope,
            holder_id="BR-SANTOS-LAB",
            holder_key=keys["BR-SANTOS-LAB"],
            agency_id="BR-SANTOS-LAB",
            public_key=keys["BR-SANTOS-LAB"].public_key,
        )


def test_revoke_and_crypto_shred(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS", "BR-SANTOS-LAB")
    revoked = sealed.keyring.revoke("BR-SANTOS-LAB")
    with pytest.raises(AccessRevoked):
        open_envelope(sealed.envelope, revoked, agency_id="BR-SANTOS-LAB", private_key=keys["BR-SANTOS-LAB"])
    assert (
        open_envelope(sealed.envelope, revoked, agency_id="CN-TJ-CUSTOMS", private_key=keys["CN-TJ-CUSTOMS"])
        == PLAINTEXT
    )
    with pytest.raises(AccessRevoked):
        revoked.revoke("BR-SANTOS-LAB")
    shredded = Keyring.from_json(sealed.keyring.shred().to_json())
    assert shredded.wraps == ()
    for agency in ("CN-TJ-CUSTOMS", "BR-SANTOS-LAB"):
        with pytest.raises(AccessRevoked):
            open_envelope(sealed.envelope, shredded, agency_id=agency, private_key=keys[agency])


def test_wrong_key_is_distinct_from_tampering(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS")
    with pytest.raises(WrongKey):
        open_envelope(
            sealed.envelope,
            sealed.keyring,
            agency_id="CN-TJ-CUSTOMS",
            private_key=keys["DE-HH-CUSTOMS"],
        )
    assert issubclass(WrongKey, DecryptionError)
    body = bytearray(sealed.envelope)
    body[-40] ^= 1
    with pytest.raises(TamperedEnvelope):
        open_envelope(
            bytes(body),
            sealed.keyring,
            agency_id="CN-TJ-CUSTOMS",
            private_key=keys["CN-TJ-CUSTOMS"],
        )


def test_header_is_authenticated_document_id_bound(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS")
    forged = sealed.envelope.replace(b"decl-1/coo", b"decl-2/coo")
    with pytest.raises(TamperedEnvelope):
        open_envelope(forged, sealed.keyring, agency_id="CN-TJ-CUSTOMS", private_key=keys["CN-TJ-CUSTOMS"])
    # the keyring of another document cannot open this envelope
    other = seal(
        PLAINTEXT,
        document_id="decl-2/coo",
        recipients={"CN-TJ-CUSTOMS": keys["CN-TJ-CUSTOMS"].public_key},
    )
    with pytest.raises(TamperedEnvelope):
        open_envelope(
            sealed.envelope,
            other.keyring,
            agency_id="CN-TJ-CUSTOMS",
            private_key=keys["CN-TJ-CUSTOMS"],
        )


def test_tampered_key_wrap(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS")
    raw = json.loads(sealed.keyring.to_json())
    wrapped = bytearray.fromhex(raw["wraps"][0]["wrappedKey"])
    wrapped[0] ^= 1
    raw["wraps"][0]["wrappedKey"] = wrapped.hex()
    with pytest.raises(TamperedEnvelope):
        open_envelope(
            sealed.envelope,
            Keyring.from_json(json.dumps(raw)),
            agency_id="CN-TJ-CUSTOMS",
            private_key=keys["CN-TJ-CUSTOMS"],
        )


def test_unsupported_versions_and_formats(keys) -> None:  # type: ignore[no-untyped-def]
    sealed = _sealed(keys, "CN-TJ-CUSTOMS")
    with pytest.raises(UnsupportedEnvelope):
        open_envelope(
            b"NOTENV" + sealed.envelope[6:],
            sealed.keyring,
            agency_id="CN-TJ-CUSTOMS",
            private_key=keys["CN-TJ-CUSTOMS"],
        )
    v2 = sealed.envelope[:6] + b"\x02" + sealed.envelope[7:]
    with pytest.raises(UnsupportedEnvelope, match="version 2"):
        open_envelope(v2, sealed.keyring, agency_id="CN-TJ-CUSTOMS", private_key=keys["CN-TJ-CUSTOMS"])
    with pytest.raises(UnsupportedEnvelope):
        Keyring.from_json('{"format": "other"}')


def test_private_keys_at_rest_are_password_protected_pkcs8(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = AgencyPrivateKey.generate()
    pem = key.to_encrypted_pem(b"correct horse battery")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = AgencyPrivateKey.from_encrypted_pem(pem, b"correct horse battery")
    assert loaded.public_key == key.public_key
    with pytest.raises(WrongKey):
        AgencyPrivateKey.from_encrypted_pem(pem, b"wrong password!")
    with pytest.raises(ValueError):
        key.to_encrypted_pem(b"short")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("key: %r %s", key, key)
    raw_private = key._key.private_bytes_raw().hex()
    assert raw_private not in caplog.text and raw_private not in repr(key)
    assert key.public_key.key_id in repr(key)


def test_envelope_in_a_store_round_trip(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path / "blocks", durable=False)
    sealed = _sealed(keys, "CN-TJ-CUSTOMS")
    cid = store.put(sealed.envelope).cid
    fetched = store.read(cid)
    assert (
        open_envelope(fetched, sealed.keyring, agency_id="CN-TJ-CUSTOMS", private_key=keys["CN-TJ-CUSTOMS"])
        == PLAINTEXT
    )
