"""Enum-valued arguments are taken as uint8 and validated, so out-of-range values get typed errors
instead of the ABI decoder's empty revert."""

from typing import Any

AGENCY_ACTIVE, AGENCY_SUSPENDED = 1, 2
TRADER_ACTIVE = 1


def test_out_of_range_agency_status_is_a_typed_error(c: Any) -> None:
    pid = c.propose(c.reg, c.reg.setAgencyStatus, c.agencies["LAB"], 7)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidStatusChange",
                    c.agencies["LAB"], AGENCY_ACTIVE, 7)  # fmt: skip


def test_out_of_range_trader_status_is_a_typed_error(c: Any) -> None:
    c.expect_revert(c.reg.updateTrader, [c.traders.t1, 3, False], c.keys.registrar,
                    "AgencyRegistryInvalidTraderStatus", 3)  # fmt: skip
    c.expect_revert(c.reg.updateTrader, [c.traders.t1, 0, False], c.keys.registrar,
                    "AgencyRegistryInvalidTraderStatus", 0)  # fmt: skip
    c.reg.updateTrader(c.traders.t1, TRADER_ACTIVE, True, {"from": c.keys.registrar})
    assert c.reg.trader(c.traders.t1)[1] == TRADER_ACTIVE
