"""The checklist over facts gathered from a real read model (the shared scenario on anvil)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger_api.index import Indexer
from ledger_api.verify import NoActiveAlerts, RequireReleased, gather_facts, verify

pytestmark = pytest.mark.integration


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


@pytest.fixture(scope="module")
def model(chain: Any, scenario: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ix = Indexer.for_deployment(
        chain.deployment, database=tmp_path_factory.mktemp("vx") / "i.db", rpc_url=chain.rpc_url
    )
    ix.poll()
    yield ix.model
    ix.close()


def test_released_declaration_verifies_with_its_live_alert_as_a_warning(model: Any, scenario: Any) -> None:
    verdict = verify(gather_facts(model, _hex(scenario.released)))
    assert verdict.declaration_status == "RELEASED" and verdict.anchored_as == "declaration"
    assert verdict.status == "VALID_WITH_WARNINGS"  # the auditor's alert #1 on D1 is still active
    assert [c.name for c in verdict.checks if c.outcome == "warn"] == ["alerts"]
    assert verify(gather_facts(model, _hex(scenario.released)), policy=NoActiveAlerts()).status == "INVALID"


def test_stamp_report_and_supporting_document_resolve_to_their_declaration(model: Any, scenario: Any) -> None:
    report = verify(gather_facts(model, _hex(scenario.stamps["lab_pass"])))
    assert report.anchored_as == "stamp_report" and report.declaration_id == _hex(scenario.released)
    assert {c.name: c.outcome for c in report.checks}["provenance"] == "pass"
    relayed = verify(gather_facts(model, _hex(scenario.stamps["relayed"])))
    assert {c.name: c.outcome for c in relayed.checks}["provenance"] == "pass"
    import hashlib

    supporting = verify(gather_facts(model, "0x" + hashlib.sha256(b"D1/doc2").hexdigest()))
    assert supporting.anchored_as == "supporting_document" and supporting.declaration_status == "RELEASED"


def test_superseded_seized_and_unknown_documents(model: Any, scenario: Any) -> None:
    original = verify(gather_facts(model, _hex(scenario.original)))
    assert original.declaration_status == "SUPERSEDED" and original.status == "VALID_WITH_WARNINGS"
    seized = verify(gather_facts(model, _hex(scenario.amended)), policy=RequireReleased())
    assert seized.declaration_status == "SEIZED" and seized.status == "INVALID"
    assert verify(gather_facts(model, "0x" + "ee" * 32)).status == "NOT_ANCHORED"
    assert verify(gather_facts(model, _hex(scenario.batch_root))).anchored_as == "batch_root"
