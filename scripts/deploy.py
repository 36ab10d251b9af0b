"""Brownie script: deploy AgencyRegistry + ClearanceLedger and bootstrap a demo consortium.

    brownie run scripts/deploy.py                      # on brownie's development network (anvil)
    brownie run scripts/deploy.py --network NAME       # any network brownie knows

Uses brownie's accounts (development: anvil's funded accounts). The Python application deploys
from the committed artifacts instead (`ledger up`); this script is the brownie-native path and the
one to use from a brownie console. It runs in brownie's environment and never imports ledger_api.
"""

from brownie import AgencyRegistry, ClearanceLedger, accounts, chain

ROLES = {
    "CUSTOMS_AUTHORITY": 1 << 0,
    "INSPECTION_AGENCY": 1 << 1,
    "PARTNER_CUSTOMS": 1 << 2,
    "RISK_ORACLE": 1 << 3,
    "AUDITOR": 1 << 4,
    "TRADER_REGISTRAR": 1 << 5,
}
SEIZE = 3
YEAR = 365 * 24 * 3600


def _id(code):
    return code.encode().ljust(32, b"\0")


def main():
    """Deploy, bootstrap (agencies, keys, traders, dual control) and finish bootstrap."""
    deployer, gov = accounts[0], accounts[1:4]
    registry = AgencyRegistry.deploy([g.address for g in gov], 2, 7 * 24 * 3600, {"from": deployer})
    ledger = ClearanceLedger.deploy(registry, {"from": deployer})
    registry.setGovernedTarget(ledger, True, {"from": deployer})
    now = chain.time()
    agencies = [
        (
            "CN-TJ-CUSTOMS",
            "Tianjin Customs District",
            b"CN",
            ROLES["CUSTOMS_AUTHORITY"] | ROLES["TRADER_REGISTRAR"],
            [accounts[4], accounts[5]],
        ),
        (
            "NL-RTM-CUSTOMS",
            "Rotterdam Customs",
            b"NL",
            ROLES["CUSTOMS_AUTHORITY"] | ROLES["PARTNER_CUSTOMS"],
            [accounts[6]],
        ),
        (
            "CN-TJ-CIQ-LAB",
            "Tianjin Inspection and Quarantine Laboratory",
            b"CN",
            ROLES["INSPECTION_AGENCY"],
            [accounts[7]],
        ),
        ("CONSORTIUM-RISK", "Consortium Risk Selectivity Oracle", b"NL", ROLES["RISK_ORACLE"], [accounts[8]]),
        ("CONSORTIUM-AUDIT", "Consortium Audit Office", b"BE", ROLES["AUDITOR"], [accounts[9]]),
    ]
    for code, name, country, roles, signers in agencies:
        registry.addAgency(_id(code), name, country, roles, b"\0" * 32, "", {"from": deployer})
        for signer in signers:
            registry.addSignerKey(_id(code), signer, now, now + YEAR, {"from": deployer})
    ledger.setApprovalsRequired(SEIZE, 2, {"from": deployer})
    registry.registerTrader(accounts[10], True, {"from": accounts[4]})
    registry.finishBootstrap({"from": deployer})
    print(f"AgencyRegistry  {registry.address}")
    print(f"ClearanceLedger {ledger.address}")
    print(f"agencies {registry.agencyCount()}, bootstrapping {registry.bootstrapping()}")
    return registry, ledger
