"""The state digest is a function of the record set only: order-free, and sensitive to every value."""

from __future__ import annotations

from ledger_api.audit import DIGEST_VERSION, digest
from ledger_api.audit._digest import norm


def test_digest_ignores_record_order_and_changes_with_any_value() -> None:
    records = {
        "ledger.stamp/0xab": ("0x" + "11" * 32, "0x" + "22" * 20, 3, 1, 1, False, 1_700_000_000),
        "registry.agencyCount": (6,),
        "registry.agency/1": ("0x" + "aa" * 32, 1, 1, 33, "0x434e", "0x" + "00" * 32, "Tianjin", ""),
    }
    reordered = dict(reversed(list(records.items())))
    assert digest(records) == digest(reordered)
    assert digest(records).startswith("0x") and len(digest(records)) == 66
    for key, values in records.items():
        for n, value in enumerate(values):
            changed = list(values)
            changed[n] = (
                (not value) if isinstance(value, bool) else (value + 1 if isinstance(value, int) else value + "0")
            )
            assert digest({**records, key: tuple(changed)}) != digest(records), (key, n)
    assert digest({**records, "extra": ()}) != digest(records)
    assert DIGEST_VERSION.endswith("/1")


def test_normalisation_is_the_same_for_view_and_event_forms() -> None:
    # views give bytes and checksummed addresses; events (hex_bytes) give lowercase hex and checksums
    assert norm(b"\x01\xab") == norm("0x01AB") == "0x01ab"
    assert norm("0xAbCdEf0000000000000000000000000000000001") == "0xabcdef0000000000000000000000000000000001"
    assert norm(True) is True and norm(7) == 7
    assert norm("Tianjin Customs") == "Tianjin Customs"
    assert norm((1, b"\x02")) == [1, "0x02"]
