"""Fixtures of the contract suite; see testkit.py for the helpers and what they check."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from brownie import accounts, chain
from testkit import (
    AGENCY_SUSPENDED,
    ALL_ROLES,
    AUDITOR,
    CUSTOMS,
    INSPECTION,
    LIFETIME,
    PARTNER,
    REGISTRAR,
    RISK,
    TRADER_SUSPENDED,
    YEAR,
    Consortium,
    ErrorCodec,
    b32,
    local_key,
    now,
    sha,
)


@pytest.fixture(autouse=True)
def isolate(fn_isolation: Any) -> None:
    """Every test starts from the module's deployed consortium."""


@pytest.fixture(scope="session", autouse=True)
def _patient_transaction_lookup() -> Any:
    """Work around a brownie 1.22.2 / anvil race seen under CPU load: brownie's ``wait`` sees the
    sender's nonce advance, asks ``eth_getTransactionByHash`` once and, if anvil has not exposed the
    just-mined transaction yet, marks it "dropped without known replacement". Retry the lookup for up
    to ~10 s before reporting it missing (2 s was not always enough: 2 of 695 in a CI rehearsal on a
    loaded machine); a really dropped transaction is still reported."""
    from brownie.network import web3
    from web3.exceptions import TransactionNotFound

    original = web3.eth.get_transaction

    def get_transaction(tx_hash: Any) -> Any:
        for _ in range(200):
            try:
                return original(tx_hash)
            except TransactionNotFound:
                time.sleep(0.05)
        return original(tx_hash)

    web3.eth.get_transaction = get_transaction
    yield
    web3.eth.get_transaction = original


def deploy_consortium(AgencyRegistry: Any, ClearanceLedger: Any) -> Consortium:
    deployer = accounts[0]
    governors = [accounts[1], accounts[2], accounts[3]]
    reg = AgencyRegistry.deploy(governors, 2, LIFETIME, {"from": deployer})
    led = ClearanceLedger.deploy(reg, {"from": deployer})
    reg.setGovernedTarget(led, True, {"from": deployer})

    spec = {
        "CN": ("CN-TJ-CUSTOMS", "Tianjin Customs", b"CN", CUSTOMS),
        "NL": ("NL-RTM-CUSTOMS", "Rotterdam Customs", b"NL", CUSTOMS),
        "LAB": ("CN-TJ-LAB", "Tianjin Inspection Lab", b"CN", INSPECTION),
        "PARTNER": ("DE-HH-CUSTOMS", "Hamburg Customs (partner)", b"DE", PARTNER),
        "RISK": ("CN-RISK-ORACLE", "Selectivity Oracle", b"CN", RISK),
        "AUDIT": ("EU-AUDIT", "Consortium Auditor", b"BE", AUDITOR),
        "REG": ("CN-TRADER-REG", "Trader Registrar", b"CN", REGISTRAR),
        "SUSP": ("XX-SUSPENDED", "Suspended All-Roles Agency", b"XX", ALL_ROLES),
    }
    agencies: dict[str, bytes] = {}
    index: dict[str, int] = {}
    for short, (code, name, country, roles) in spec.items():
        agency_id = b32(code)
        tx = reg.addAgency(
            agency_id, name, country, roles, sha("x25519:" + code), f"/dns/{code.lower()}/tcp/4001", {"from": deployer}
        )
        agencies[short] = agency_id
        index[short] = int(tx.events["AgencyAdded"]["agencyIndex"])

    t0 = now()
    key_owner = {
        "cn": "CN",
        "cn2": "CN",
        "cn3": "CN",
        "nl": "NL",
        "lab": "LAB",
        "lab2": "LAB",
        "partner": "PARTNER",
        "oracle": "RISK",
        "auditor": "AUDIT",
        "registrar": "REG",
        "susp": "SUSP",
        "compromised": "LAB",
        "expired": "CN",
    }
    keys = SimpleNamespace()
    for name, owner in key_owner.items():
        key = local_key(name)
        setattr(keys, name, key)
        until = t0 + 60 if name == "expired" else t0 + YEAR
        reg.addSignerKey(agencies[owner], key, t0 - 1000, until, {"from": deployer})
    # A compromise recorded by governance (the bootstrapper): its stamps from t0-10 on are void.
    reg.reportKeyCompromised(keys.compromised, t0 - 10, {"from": deployer})

    traders = SimpleNamespace(t1=accounts[13], t2=accounts[14], suspended=accounts[17], unregistered=accounts[18])
    for t in (traders.t1, traders.t2, traders.suspended):
        reg.registerTrader(t, t == traders.t1, {"from": keys.registrar})
    reg.updateTrader(traders.suspended, TRADER_SUSPENDED, False, {"from": keys.registrar})
    reg.setAgencyStatus(agencies["SUSP"], AGENCY_SUSPENDED, {"from": deployer})
    reg.finishBootstrap({"from": deployer})

    chain.sleep(120)  # the "expired" key is rotated out
    chain.mine()
    return Consortium(
        reg=reg,
        led=led,
        errors=ErrorCodec(AgencyRegistry, ClearanceLedger),
        deployer=deployer,
        governors=governors,
        outsider=accounts[19],
        agencies=agencies,
        index=index,
        keys=keys,
        traders=traders,
    )


@pytest.fixture(scope="module")
def consortium(module_isolation: Any, AgencyRegistry: Any, ClearanceLedger: Any) -> Consortium:
    return deploy_consortium(AgencyRegistry, ClearanceLedger)


@pytest.fixture(scope="module")
def c(consortium: Consortium) -> Consortium:
    """Short alias used by the tests."""
    return consortium


@pytest.fixture(scope="module")
def errors(AgencyRegistry: Any, ClearanceLedger: Any) -> ErrorCodec:
    return ErrorCodec(AgencyRegistry, ClearanceLedger)
