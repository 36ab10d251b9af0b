"""Request authentication: RFC 9421 signatures by on-chain keys; each refusal has its own code."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from coincurve import PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ledger_api import errors as e
from ledger_api.api import create_app
from ledger_api.api.auth import (
    MemoryNonceStore,
    RequestAuthenticator,
    Secp256k1Keccak256,
    SqliteNonceStore,
    _address_of,
    sign_request,
)
from ledger_api.api.deps import CurrentAgency, CurrentIdentity, require_role
from ledger_api.models import Identity

URL = "http://ledger.test/v1/declarations?mine=1"
BODY = b'{"reference":"LRN-1"}'
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class Directory:
    """A fixed set of identities (the registry-backed one is tested on anvil below)."""

    def __init__(self, *identities: Identity) -> None:
        self.by_address = {i.address: i for i in identities}

    def identity(self, address: str, *, at: int) -> Identity | None:
        return self.by_address.get(address)


@pytest.fixture
def trader_key() -> bytes:
    return PrivateKey().secret


@pytest.fixture
def authenticator(trader_key: bytes) -> RequestAuthenticator:
    address = _address_of(PrivateKey(trader_key).public_key)
    return RequestAuthenticator(
        directory=Directory(Identity(address=address, kind="trader")), nonces=MemoryNonceStore()
    )


def _signed(
    key: bytes, *, method: str = "POST", url: str = URL, body: bytes = BODY, **kw: object
) -> list[tuple[str, str]]:
    headers = {"content-type": "application/json"}
    headers.update(sign_request(method=method, url=url, headers=headers, body=body, private_key=key, **kw))  # type: ignore[arg-type]
    return list(headers.items())


def test_a_signed_request_authenticates_its_caller(authenticator: RequestAuthenticator, trader_key: bytes) -> None:
    identity = authenticator.authenticate(method="POST", url=URL, headers=_signed(trader_key), body=BODY)
    assert identity.kind == "trader" and identity.address == _address_of(PrivateKey(trader_key).public_key)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"method": "PUT"}, e.SignatureInvalid),
        ({"url": "http://ledger.test/v1/declarations?mine=0"}, e.SignatureInvalid),
        ({"body": b'{"reference":"LRN-2"}'}, e.SignatureInvalid),  # Content-Digest no longer matches
    ],
)
def test_tampering_with_method_uri_or_body_is_detected(
    authenticator: RequestAuthenticator, trader_key: bytes, change: dict[str, object], error: type[Exception]
) -> None:
    request: dict[str, object] = {"method": "POST", "url": URL, "body": BODY} | change
    with pytest.raises(error):
        authenticator.authenticate(headers=_signed(trader_key), **request)  # type: ignore[arg-type]


def test_unsigned_request_is_missing_a_signature(authenticator: RequestAuthenticator) -> None:
    with pytest.raises(e.SignatureMissing):
        authenticator.authenticate(method="GET", url=URL, headers=[("accept", "application/json")], body=b"")


def test_replayed_signature_is_refused(authenticator: RequestAuthenticator, trader_key: bytes) -> None:
    headers = _signed(trader_key)
    authenticator.authenticate(method="POST", url=URL, headers=headers, body=BODY)
    with pytest.raises(e.SignatureReplayed):
        authenticator.authenticate(method="POST", url=URL, headers=headers, body=BODY)


@pytest.mark.parametrize("offset", [-600, +600])
def test_signatures_outside_the_clock_window_are_refused(
    authenticator: RequestAuthenticator, trader_key: bytes, offset: int
) -> None:
    headers = _signed(trader_key, created=int(time.time()) + offset)
    with pytest.raises(e.SignatureInvalid):
        authenticator.authenticate(method="POST", url=URL, headers=headers, body=BODY)


def test_unknown_key_is_refused_even_with_a_valid_signature(authenticator: RequestAuthenticator) -> None:
    with pytest.raises(e.UnknownCaller):
        authenticator.authenticate(method="POST", url=URL, headers=_signed(PrivateKey().secret), body=BODY)


def test_short_nonce_is_refused(authenticator: RequestAuthenticator, trader_key: bytes) -> None:
    with pytest.raises(e.SignatureInvalid, match="nonce"):
        authenticator.authenticate(method="POST", url=URL, headers=_signed(trader_key, nonce="abc"), body=BODY)


def test_high_s_and_foreign_signatures_do_not_verify(trader_key: bytes) -> None:
    algorithm = Secp256k1Keccak256(private_key=trader_key)
    signature = algorithm.sign(b"base")
    verifier = Secp256k1Keccak256(public_key=_address_of(PrivateKey(trader_key).public_key))
    verifier.verify(signature, b"base")  # the original verifies
    s = int.from_bytes(signature[32:64], "big")
    high_s = signature[:32] + (N - s).to_bytes(32, "big") + bytes([signature[64] ^ 1])
    with pytest.raises(Exception, match="high-s"):
        verifier.verify(high_s, b"base")
    with pytest.raises(Exception, match="another key"):
        Secp256k1Keccak256(public_key=_address_of(PrivateKey().public_key)).verify(signature, b"base")


def test_sqlite_nonce_store_is_shared_and_forgets_expired(tmp_path: Path) -> None:
    clock = [1000.0]
    first = SqliteNonceStore(tmp_path / "n.db", clock=lambda: clock[0])
    second = SqliteNonceStore(tmp_path / "n.db", clock=lambda: clock[0])
    assert first.use("0xA", "nonce-1", expires_at=1600)
    assert not second.use("0xA", "nonce-1", expires_at=1600)  # another worker sees it
    assert second.use("0xB", "nonce-1", expires_at=1600)  # nonces are per key
    clock[0] = 2000.0
    assert first.use("0xA", "nonce-1", expires_at=2600)  # expired entries are forgotten


def _protected_app(authenticator: RequestAuthenticator) -> FastAPI:
    app = create_app()
    app.state.authenticator = authenticator

    @app.post("/v1/whoami")
    async def whoami(caller: CurrentIdentity) -> dict[str, str]:
        return {"address": caller.address, "kind": caller.kind}

    @app.post("/v1/customs-only")
    async def customs_only(caller: CurrentAgency) -> dict[str, str]:
        require_role(caller, "CUSTOMS_AUTHORITY")
        return {"agency": caller.agency_id or ""}

    return app


def test_http_requests_are_authenticated_end_to_end(authenticator: RequestAuthenticator, trader_key: bytes) -> None:
    client = TestClient(_protected_app(authenticator), base_url="http://ledger.test")
    url = "http://ledger.test/v1/whoami"
    ok = client.post(url, content=BODY, headers=dict(_signed(trader_key, url=url)))
    assert ok.status_code == 200 and ok.json()["kind"] == "trader"
    unsigned = client.post(url, content=BODY)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "signature-missing"
    assert "ecdsa-secp256k1-keccak256" in unsigned.headers["accept-signature"]
    replay = client.post(url, content=BODY, headers=dict(_signed(trader_key, url=url, nonce="n" * 20)))
    assert replay.status_code == 200
    again = client.post(url, content=BODY, headers=dict(_signed(trader_key, url=url, nonce="n" * 20)))
    assert again.status_code == 401 and again.json()["code"] == "signature-replayed"
    customs = "http://ledger.test/v1/customs-only"
    forbidden = client.post(customs, content=BODY, headers=dict(_signed(trader_key, url=customs)))
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"


@pytest.mark.integration
def test_registry_directory_resolves_agency_keys_and_traders_on_chain(tmp_path: Path) -> None:
    import socket

    from web3 import Web3

    from ledger_api.chain.deploy import ensure_deployed
    from ledger_api.chain.identity import RegistryDirectory
    from ledger_api.chain.keystore import Keystore
    from ledger_api.chain.node import AnvilNode
    from ledger_api.config import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(var_dir=tmp_path, anvil_port=port)
    try:
        record, _ = ensure_deployed(settings)
        w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url))
        directory = RegistryDirectory(w3=w3, registry=record.registry, ttl=0)
        now = int(w3.eth.get_block("latest")["timestamp"])
        customs = directory.identity(record.agencies["CN-TJ-CUSTOMS"].signers[0], at=now)
        assert customs is not None and customs.kind == "agency" and customs.agency_id == "CN-TJ-CUSTOMS"
        assert customs.has_role("CUSTOMS_AUTHORITY") and customs.has_role("TRADER_REGISTRAR")
        assert not customs.has_role("INSPECTION_AGENCY")
        trader = directory.identity(record.traders["trader-tj-electronics"], at=now)
        assert trader is not None and trader.kind == "trader" and trader.aeo
        assert directory.identity(Web3.to_checksum_address("0x" + "11" * 20), at=now) is None
        far_future = now + 2 * 365 * 24 * 3600  # past every bootstrap key's validity window
        assert directory.identity(record.agencies["CN-TJ-CUSTOMS"].signers[0], at=far_future) is None
        # A key reported compromised by its peer stops authenticating.
        keystore = Keystore.from_settings(settings)
        peer = keystore.signer("cn-tj-customs-signer-0")
        victim = record.agencies["CN-TJ-CUSTOMS"].signers[1]
        registry = w3.eth.contract(address=record.registry, abi=directory._registry.abi)
        tx = registry.functions.reportKeyCompromised(victim, now).build_transaction(
            {"from": peer.address, "nonce": w3.eth.get_transaction_count(peer.address), "chainId": w3.eth.chain_id}
        )
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(peer.sign_transaction(tx).raw_transaction))
        assert directory.identity(victim, at=now + 5) is None
    finally:
        AnvilNode(state_dir=tmp_path / "anvil", port=port).stop()
