"""The wired service on a real anvil: health of the deployment, agency keys authenticate."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from ledger_api.api.auth import sign_request
from ledger_api.api.deps import CurrentIdentity
from ledger_api.api.service import build_service
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.keystore import Keystore
from ledger_api.config import Settings

pytestmark = pytest.mark.integration


def test_service_reports_health_and_authenticates_a_deployed_agency_key(
    deployed: tuple[Settings, Deployment],
) -> None:
    settings, record = deployed
    app = build_service(settings, record)

    @app.get("/v1/whoami")
    async def whoami(caller: CurrentIdentity) -> dict[str, object]:
        return {"agency": caller.agency_id, "roles": sorted(caller.roles)}

    with TestClient(app, base_url="http://ledger.test") as client:  # runs the lifespan: indexer + head
        for _ in range(50):
            health = client.get("/health").json()
            if health["status"] == "ok":
                break
            time.sleep(0.1)
        assert health["status"] == "ok" and health["checks"]["chain"]["chainId"] == record.chain_id
        assert health["checks"]["index"]["indexedThroughBlock"] > 0

        lab = Keystore.from_settings(settings).signer("cn-tj-ciq-lab-signer-0")
        url = "http://ledger.test/v1/whoami"
        headers = sign_request(method="GET", url=url, headers={}, body=b"", private_key=bytes(lab.key))
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        assert response.json() == {"agency": "CN-TJ-CIQ-LAB", "roles": ["INSPECTION_AGENCY"]}
        assert (settings.var_dir / "api" / "nonces.db").exists()
