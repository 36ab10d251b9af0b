"""An account is either a trader or an agency signer key, never both (a customs officer must not be
able to submit declarations to their own jurisdiction and then accept them)."""

from typing import Any

from brownie import accounts
from testkit import local_key, now

DAY = 24 * 3600


def test_a_signer_key_cannot_be_registered_as_a_trader(c: Any) -> None:
    c.expect_revert(c.reg.registerTrader, [c.keys.cn, False], c.keys.registrar, "AgencyRegistryRoleConflict", c.keys.cn)
    assert c.reg.trader(c.keys.cn)[1] == 0  # still not a trader


def test_a_trader_cannot_become_a_signer_key(c: Any) -> None:
    pid = c.propose(c.reg, c.reg.addSignerKey, c.agencies["CN"], c.traders.t1, now() - 10, now() + DAY)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryRoleConflict", c.traders.t1)
    assert c.reg.signerKey(c.traders.t1)[0] == 0  # no agency owns it


def test_distinct_accounts_still_work_for_both(c: Any) -> None:
    fresh_key, fresh_trader = local_key("separation-key"), accounts[11]
    c.govern(c.reg.addSignerKey, c.agencies["CN"], fresh_key, now() - 10, now() + DAY)
    c.reg.registerTrader(fresh_trader, False, {"from": c.keys.registrar})
    assert c.reg.signerKey(fresh_key)[0] == c.index["CN"]
    assert c.reg.trader(fresh_trader)[1] == 1
