"""The trader × agency × endpoint authorization matrix: every route of the service, every kind of caller.

One table (``MATRIX``) says, for each route the app serves, what each kind of caller gets: ``OK`` (the
authorization layer let the request through: a 2xx for a probe body the route accepts) or the exact
``(status, problem code)`` of the refusal. Unsigned requests get ``401 signature-missing`` on every
route but the public operations endpoints. A route the app serves without a row here fails the test,
so a new route cannot ship without its authorization expectations.

The rules come from docs/api.md: declarations are visible to their declarant and to the customs
authority of their jurisdiction only (``404 declaration-not-found`` for anyone else, as for an unknown
id); customs routes are for customs authority keys (``403 forbidden``), on their jurisdiction only
(``404``); stamps for inspection agencies, revocation by the issuing agency (``404 stamp-not-found``);
documents for agencies holding a key wrap (``404 document-not-found`` otherwise, as for an unknown
sha256), revocation of access by an anchoring jurisdiction; governance for governors only; tracking
and tokens for their owner (``404``).

A real anvil with the default consortium and the service under uvicorn (the ``service`` fixture). The
probes of allowed callers are journaled or mined like any write; each object-level check depends only
on facts that never change (declarant, jurisdiction, issuing agency, key wraps of agencies no row
calls as), so the order of the rows does not matter.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from ledger_api.api.auth import sign_request
from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.documents import Cid
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------------------------------- callers

#: Caller kinds (columns of the matrix) and the keystore key each signs with; ``None``: unsigned.
CALLERS: dict[str, str | None] = {
    "owner": "trader-tj-electronics",  # declarant of the fixture declaration
    "trader": "trader-tj-foods",  # another trader of the same jurisdiction
    "customs": "cn-tj-customs-signer-0",  # customs authority of the declaration's jurisdiction
    "xcustoms": "nl-rtm-customs-signer-0",  # another customs authority (also PARTNER_CUSTOMS)
    "lab": "cn-tj-ciq-lab-signer-0",  # inspection agency, issuer of the fixture stamp
    "risk": "consortium-risk-signer-0",  # risk oracle
    "audit": "consortium-audit-signer-0",  # auditor
    "governor": "governor-0",
    "anon": None,
}
SIGNED_KINDS = tuple(kind for kind, label in CALLERS.items() if label is not None)

#: Operations endpoints that are public (or guarded otherwise) and the web pages (static files that hold
#: no data: they call the routes below with the signed-in token) need no row.
PUBLIC = {
    ("GET", "/health"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/"), ("GET", "/verify"), ("GET", "/trader"), ("GET", "/auditor"), ("GET", "/static/{name}"),
}  # fmt: skip

# ---------------------------------------------------------------------------------------- the matrix

Outcome = str | tuple[int, str]
OK: Outcome = "OK"  # let through: the probe was answered 2xx
F: Outcome = (403, "forbidden")
DNF: Outcome = (404, "declaration-not-found")
SNF: Outcome = (404, "submission-not-found")
TNF: Outcome = (404, "token-not-found")
STNF: Outcome = (404, "stamp-not-found")
DOC: Outcome = (404, "document-not-found")  # no wrap: exactly as an unknown sha256
UNSIGNED: Outcome = (401, "signature-missing")

D = "/v1/declarations/{declaration_id}"
G = "/v1/governance/proposals"

# fmt: off
#: (method, path template) → outcome per signed caller kind, in the order of SIGNED_KINDS.
MATRIX: dict[tuple[str, str], tuple[Outcome, ...]] = {
    #                                                         owner trader customs xcustoms lab   risk  audit governor
    ("GET",    "/v1/verify/{sha256}"):                        (F,   F,     OK,     OK,      OK,   OK,   OK,   F),
    ("POST",   "/v1/verify"):                                 (F,   F,     OK,     OK,      OK,   OK,   OK,   F),
    ("GET",    "/v1/evidence/{subject}"):                     (F,   F,     OK,     OK,      OK,   OK,   OK,   F),
    ("GET",    "/v1/verify/cid/{cid}"):                       (F,   F,     OK,     OK,      OK,   OK,   OK,   F),
    ("GET",    "/v1/declarations"):                           (OK,  OK,    F,      F,       F,    F,    F,    F),
    ("GET",    "/v1/declarations/mine"):                      (OK,  OK,    F,      F,       F,    F,    F,    F),
    ("POST",   "/v1/declarations"):                           (OK,  OK,    F,      F,       F,    F,    F,    F),
    ("GET",    D):                                            (OK,  DNF,   OK,     DNF,     DNF,  DNF,  DNF,  DNF),
    ("GET",    D + "/timeline"):                              (OK,  DNF,   OK,     DNF,     DNF,  DNF,  DNF,  DNF),
    ("POST",   D + "/amendments"):                            (OK,  DNF,   F,      F,       F,    F,    F,    F),
    ("GET",    "/v1/submissions/{tracking_id}"):              (OK,  SNF,   SNF,    SNF,     SNF,  SNF,  SNF,  SNF),
    ("POST",   D + "/acceptance"):                            (F,   F,     OK,     DNF,     F,    F,    F,    F),
    ("POST",   D + "/decisions"):                             (F,   F,     OK,     DNF,     F,    F,    F,    F),
    ("POST",   D + "/decisions/pending/approvals"):           (F,   F,     OK,     DNF,     F,    F,    F,    F),
    ("POST",   D + "/decisions/pending/cancellation"):        (F,   F,     OK,     DNF,     F,    F,    F,    F),
    ("GET",    "/v1/customs/declarations"):                   (F,   F,     OK,     OK,      F,    F,    F,    F),
    ("POST",   "/v1/stamps"):                                 (F,   F,     F,      F,       OK,   F,    F,    F),
    ("POST",   "/v1/stamps/signed"):                          (F,   F,     OK,     OK,      OK,   OK,   OK,   F),
    ("POST",   "/v1/stamps/{stamp_id}/revocation"):           (F,   F,     STNF,   STNF,    OK,   STNF, STNF, F),
    ("GET",    "/v1/documents/{sha256}"):                     (F,   F,     OK,     DOC,     DOC,  DOC,  DOC,  F),
    ("GET",    "/v1/documents/{sha256}/access"):              (F,   F,     OK,     DOC,     DOC,  DOC,  DOC,  F),
    ("POST",   "/v1/documents/{sha256}/grants"):              (F,   F,     OK,     DOC,     DOC,  DOC,  DOC,  F),
    ("DELETE", "/v1/documents/{sha256}/grants/{agency_id}"):  (F,   F,     OK,     F,       F,    F,    F,    F),
    ("POST",   G):                                            (F,   F,     F,      F,       F,    F,    F,    OK),
    ("POST",   G + "/{proposal_id}/approvals"):               (F,   F,     F,      F,       F,    F,    F,    OK),
    ("POST",   G + "/{proposal_id}/execution"):               (F,   F,     F,      F,       F,    F,    F,    OK),
    ("GET",    G + "/{proposal_id}"):                         (F,   F,     F,      F,       F,    F,    F,    OK),
    ("POST",   "/v1/tokens"):                                 (OK,  OK,    OK,     OK,      OK,   OK,   OK,   OK),
    ("GET",    "/v1/tokens"):                                 (OK,  OK,    OK,     OK,      OK,   OK,   OK,   OK),
    ("DELETE", "/v1/tokens/{token_id}"):                      (OK,  TNF,   TNF,    TNF,     TNF,  TNF,  TNF,  TNF),
    ("GET",    "/v1/me"):                                     (OK,  OK,    OK,     OK,      OK,   OK,   OK,   OK),
    ("GET",    "/v1/audit/report"):                           (F,   F,     F,      F,       F,    F,    OK,   F),
}
# fmt: on

#: Cells where the service contradicts the table (docs/api.md): (method, path, kind) → (what it answers,
#: why that is wrong). Each is asserted as observed so a fix shows up (and must be moved into MATRIX).
KNOWN_DEVIATIONS: dict[tuple[str, str, str], tuple[Outcome, str]] = {}

# ---------------------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    """Real objects for the object-level routes (all created by the owner / their issuers)."""

    declaration_id: str
    document: bytes  # a supporting document of the declaration (sealed for the jurisdiction only)
    document_cid: str  # the CID of its stored (sealed) copy
    tracking_id: str  # the owner's submission of the declaration
    stamp_id: str  # a LAB_TEST stamp by the lab on the declaration
    token_id: str  # an API token of the owner
    open_proposal: int  # proposed by governor-1: governor-0 may approve it
    ready_proposal: int  # proposed by governor-1, approved by governor-2: governor-0 may execute it
    lab_address: str


def _sha(content: bytes) -> str:
    return "0x" + hashlib.sha256(content).hexdigest()


def _visible(probe: Callable[[], Any]) -> Any:
    """``probe()``'s answer, or None while it is a 404 (the indexer has not caught up)."""
    try:
        return probe()
    except ApiProblem as exc:
        if exc.status == 404:
            return None
        raise


def _settled(client: LedgerHttpClient, accepted: dict[str, Any]) -> None:
    settled = client.wait_settled(accepted["tracking_id"])
    assert settled["status"] == "final", settled


def _roles(agency_id: str, *roles: str) -> dict[str, Any]:
    return {"action": "set_agency_roles", "agency_id": agency_id, "roles": list(roles)}


@pytest.fixture(scope="module")
def world(service: Service) -> World:
    """A declaration by the owner (with a supporting document), accepted, stamped by the lab; an API
    token of the owner; two governance proposals."""
    owner, customs = service.client(CALLERS["owner"] or ""), service.client(CALLERS["customs"] or "")
    document = b"%PDF-1.7 matrix invoice " + os.urandom(32)
    declaration = {"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": f"LRN-MATRIX-{uuid.uuid4().hex[:12]}"}
    submitted = owner.submit_declaration(declaration, [(1, "invoice.pdf", document)])
    declaration_id: str = submitted["declaration_id"]
    _settled(owner, submitted)
    service.until(lambda: _visible(lambda: customs.declaration(declaration_id)))
    _settled(customs, customs.accept_declaration(declaration_id, "MRN-MATRIX-1"))
    service.until(lambda: customs.declaration(declaration_id)["status"] == "ACCEPTED")
    lab = service.client(CALLERS["lab"] or "")
    report = b"%PDF lab report " + os.urandom(32)
    stamp = lab.record_stamp(declaration_id, stamp_type="LAB_TEST", result="PASS", report=report)
    _settled(lab, stamp)
    service.until(lambda: any(e["name"] == "StampRecorded" for e in customs.timeline(declaration_id)))

    token_id: str = owner.mint_token(ttl_seconds=3600)["token_id"]
    stored = owner.declaration(declaration_id)["documents"][0]["cid"]
    report_path = service.settings.audit_report_path  # the auditor's latest replay report
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps({"report": "ledger-audit-replay/1", "ok": True, "findings": []}))
    proposer, approver = service.client("governor-1"), service.client("governor-2")
    open_id = int(proposer.propose(_roles("CONSORTIUM-AUDIT", "AUDITOR"))["proposal_id"])
    ready_id = int(proposer.propose(_roles("CONSORTIUM-RISK", "RISK_ORACLE"))["proposal_id"])
    approver.approve_proposal(ready_id)
    service.until(lambda: _visible(lambda: proposer.proposal(open_id)))
    return World(
        declaration_id=declaration_id, document=document, document_cid=str(Cid.from_bytes(bytes.fromhex(stored[2:]))),
        tracking_id=submitted["tracking_id"],
        stamp_id=stamp["stamp_id"], token_id=token_id, open_proposal=open_id, ready_proposal=ready_id,
        lab_address=service.address(CALLERS["lab"] or ""),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class Probe:
    """One concrete request for a route: path, body and content type."""

    path: str
    body: bytes = b""
    content_type: str | None = None


def _json(path: str, payload: Any) -> Probe:
    return Probe(path, json.dumps(payload).encode(), "application/json")


def _multipart(path: str, data: dict[str, str], files: list[tuple[str, tuple[str, bytes, str]]]) -> Probe:
    encoded = httpx.Request("POST", "http://probe" + path, data=data, files=files)
    return Probe(path, encoded.read(), encoded.headers["content-type"])


def _declaration(path: str) -> Probe:
    document = {"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": f"LRN-PROBE-{uuid.uuid4().hex[:12]}"}
    return _multipart(
        path, {}, [("declaration", ("declaration.json", json.dumps(document).encode(), "application/json"))]
    )


def _signed_stamp(w: World) -> Probe:
    """A well-formed relayed stamp naming the lab's key; its signature is not the lab's, so the
    contract refuses it when mined (the matrix only needs the route to take it)."""
    report = os.urandom(32)
    signature = (1).to_bytes(32, "big") + (1).to_bytes(32, "big") + bytes([27])
    now = int(time.time())
    return _json("/v1/stamps/signed", {
        "declaration_id": w.declaration_id, "stamp_type": "LAB_TEST", "result": "PASS", "report_sha256": _sha(report),
        "report_cid": "0x01551220" + _sha(report)[2:], "signer": w.lab_address, "signed_at": now, "nonce": 0,
        "deadline": now + 3600, "signature": "0x" + signature.hex(),
    })  # fmt: skip


def _probe(route: tuple[str, str], w: World) -> Probe:
    """A fresh request for ``route`` that the route accepts from an allowed caller."""
    did, doc = w.declaration_id, _sha(w.document)
    probes: dict[tuple[str, str], Callable[[], Probe]] = {
        ("GET", "/v1/verify/{sha256}"): lambda: Probe(f"/v1/verify/{doc}"),
        ("POST", "/v1/verify"): lambda: Probe("/v1/verify", w.document, "application/octet-stream"),
        ("GET", "/v1/evidence/{subject}"): lambda: Probe(f"/v1/evidence/{doc}"),
        ("GET", "/v1/verify/cid/{cid}"): lambda: Probe(f"/v1/verify/cid/{w.document_cid}"),
        ("GET", "/v1/declarations"): lambda: Probe("/v1/declarations"),
        ("GET", "/v1/declarations/mine"): lambda: Probe("/v1/declarations/mine?limit=5"),
        ("POST", "/v1/declarations"): lambda: _declaration("/v1/declarations"),
        ("GET", D): lambda: Probe(f"/v1/declarations/{did}"),
        ("GET", D + "/timeline"): lambda: Probe(f"/v1/declarations/{did}/timeline"),
        ("POST", D + "/amendments"): lambda: _declaration(f"/v1/declarations/{did}/amendments"),
        ("GET", "/v1/submissions/{tracking_id}"): lambda: Probe(f"/v1/submissions/{w.tracking_id}"),
        ("POST", D + "/acceptance"): lambda: _json(f"/v1/declarations/{did}/acceptance", {"mrn": "MRN-PROBE-1"}),
        ("POST", D + "/decisions"): lambda: _json(
            f"/v1/declarations/{did}/decisions", {"kind": "HOLD", "reason_code": 1}
        ),
        ("POST", D + "/decisions/pending/approvals"): lambda: _json(
            f"/v1/declarations/{did}/decisions/pending/approvals", {"pass_stamps": []}
        ),
        ("POST", D + "/decisions/pending/cancellation"): lambda: Probe(
            f"/v1/declarations/{did}/decisions/pending/cancellation"
        ),
        ("GET", "/v1/customs/declarations"): lambda: Probe("/v1/customs/declarations?limit=5"),
        ("POST", "/v1/stamps"): lambda: _multipart(
            "/v1/stamps",
            {"declaration_id": did, "stamp_type": "LAB_TEST", "result": "PASS"},
            [("report", ("report.pdf", b"%PDF probe report " + os.urandom(16), "application/octet-stream"))],
        ),
        ("POST", "/v1/stamps/signed"): lambda: _signed_stamp(w),
        ("POST", "/v1/stamps/{stamp_id}/revocation"): lambda: _json(
            f"/v1/stamps/{w.stamp_id}/revocation", {"reason_code": 1}
        ),
        ("GET", "/v1/documents/{sha256}"): lambda: Probe(f"/v1/documents/{doc}"),
        ("GET", "/v1/documents/{sha256}/access"): lambda: Probe(f"/v1/documents/{doc}/access"),
        # NL-NVWA is no caller of the matrix: granting or revoking its wrap changes no other cell.
        ("POST", "/v1/documents/{sha256}/grants"): lambda: _json(
            f"/v1/documents/{doc}/grants", {"agency_id": "NL-NVWA"}
        ),
        ("DELETE", "/v1/documents/{sha256}/grants/{agency_id}"): lambda: Probe(f"/v1/documents/{doc}/grants/NL-NVWA"),
        ("POST", G): lambda: _json(G, _roles("NL-NVWA", "INSPECTION_AGENCY")),
        ("POST", G + "/{proposal_id}/approvals"): lambda: Probe(f"{G}/{w.open_proposal}/approvals"),
        ("POST", G + "/{proposal_id}/execution"): lambda: Probe(f"{G}/{w.ready_proposal}/execution"),
        ("GET", G + "/{proposal_id}"): lambda: Probe(f"{G}/{w.open_proposal}"),
        ("POST", "/v1/tokens"): lambda: _json("/v1/tokens", {"ttl_seconds": 60}),
        ("GET", "/v1/tokens"): lambda: Probe("/v1/tokens"),
        ("DELETE", "/v1/tokens/{token_id}"): lambda: Probe(f"/v1/tokens/{w.token_id}"),
        ("GET", "/v1/me"): lambda: Probe("/v1/me"),
        ("GET", "/v1/audit/report"): lambda: Probe("/v1/audit/report"),
    }
    return probes[route]()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _send(service: Service, http: httpx.Client, method: str, probe: Probe, label: str | None) -> tuple[int, str]:
    """Send ``probe`` signed by keystore key ``label`` (unsigned if None); (status, problem code or "")."""
    url = service.base_url + probe.path
    headers = {"idempotency-key": f"matrix-{uuid.uuid4().hex}"} if method != "GET" else {}
    if probe.content_type:
        headers["content-type"] = probe.content_type
    if label is not None:
        key = bytes(service.keystore.signer(label).key)
        headers |= sign_request(method=method, url=url, headers=headers, body=probe.body, private_key=key)
    response = http.request(method, url, headers=headers, content=probe.body)
    code = ""
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/problem"):
        code = str(response.json().get("code", ""))
    return response.status_code, code


def _matches(expected: Outcome, status: int, code: str) -> bool:
    if expected == OK:
        return 200 <= status < 300
    return (status, code) == expected


# ---------------------------------------------------------------------------------------- the test


def test_every_caller_kind_gets_exactly_its_authorization_on_every_route(
    service: Service, world: World, http: httpx.Client
) -> None:
    served = set()
    for context in iter_route_contexts(service.app.routes):
        for method in sorted((context.methods or {"?"}) - {"HEAD", "OPTIONS"}):
            served.add((method, str(context.path_format)))
    missing = sorted(served - PUBLIC - set(MATRIX))
    assert not missing, f"routes without authorization expectations (add rows to MATRIX): {missing}"
    stale = sorted(set(MATRIX) - served)
    assert not stale, f"MATRIX rows for routes the app no longer serves: {stale}"
    assert all(len(row) == len(SIGNED_KINDS) for row in MATRIX.values())

    wrong: list[str] = []
    fixed: list[str] = []
    for route, row in MATRIX.items():
        method, template = route
        for kind, table_outcome in (*zip(SIGNED_KINDS, row, strict=True), ("anon", UNSIGNED)):
            deviation = KNOWN_DEVIATIONS.get((method, template, kind))
            expected = deviation[0] if deviation else table_outcome
            status, code = _send(service, http, method, _probe(route, world), CALLERS[kind])
            if not _matches(expected, status, code):
                wrong.append(f"{method} {template} as {kind}: got {(status, code)}, expected {expected}")
            elif deviation and _matches(table_outcome, status, code):
                fixed.append(f"{method} {template} as {kind}")
    assert not fixed, f"known deviations no longer occur (drop them from KNOWN_DEVIATIONS): {fixed}"
    assert not wrong, "authorization matrix violated:\n" + "\n".join(wrong)
