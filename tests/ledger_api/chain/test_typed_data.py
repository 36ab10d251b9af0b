"""The shared EIP-712 stamp document gives the digest the contract (and the bridge) computes."""

from __future__ import annotations

import hashlib

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.typed_data import recover_typed_data, sign_typed_data, stamp_typed_data
from oracles.bridge import domain_separator, stamp_digest

LEDGER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_stamp_typed_data_is_the_contract_digest_and_round_trips_a_signature() -> None:
    account = Account.from_key(hashlib.sha256(b"inspector key for a test").digest())
    fields = calls.SignedStampFields(
        declaration_id=hashlib.sha256(b"declaration").digest(), stamp_type=4, result=1,
        report_sha256=hashlib.sha256(b"report").digest(), report_cid=b"\x01\x55\x12\x20" + bytes(32),
        signer=account.address, signed_at=1_780_000_000, nonce=7, deadline=1_780_003_600,
    )  # fmt: skip
    typed = stamp_typed_data(chain_id=31337, ledger=LEDGER, message={
        "declarationId": fields.declaration_id, "stampType": fields.stamp_type, "result": fields.result,
        "reportSha256": fields.report_sha256, "reportCid": fields.report_cid, "signer": fields.signer,
        "signedAt": fields.signed_at, "nonce": fields.nonce, "deadline": fields.deadline,
    })  # fmt: skip
    signable = encode_typed_data(full_message=typed)
    expected = stamp_digest(fields, domain=domain_separator(31337, LEDGER))
    assert signable.header == domain_separator(31337, LEDGER)  # the same domain as the bridge / contract
    assert keccak(b"\x19\x01" + signable.header + signable.body) == expected
    signature = sign_typed_data(account, typed)
    assert recover_typed_data(typed, signature).lower() == account.address.lower()
    other_chain = stamp_typed_data(chain_id=1, ledger=LEDGER, message=typed["message"])
    assert recover_typed_data(other_chain, signature).lower() != account.address.lower()  # bound to the chain
