"""The demo scenario (``ledger demo``): the consortium's users at work, through the HTTP API.

Runs against a running ``ledger run`` with the demo identities' keys from the keystore under
``var_dir``, every action a signed request of the typed client (:mod:`ledger_api.client`) by the
identity that would take it in real life:

1. a food consignment (trader-tj-foods) with invoice, packing list and certificate of origin →
   the risk oracle's channel → acceptance (MRN) → inspection stamps by the Tianjin laboratory and a
   sanitary certificate signed off-line by the Dutch food authority, relayed through the partner
   bridge's signed feed → release citing every PASS stamp;
2. a GREEN consignment of an AEO trader, released automatically on acceptance;
3. a held consignment seized under four eyes (two customs signers);
4. an amendment superseding a declaration version;
5. a **simulated attack**: one byte of a stored envelope flipped in the embedded store, caught by
   the integrity watch (an on-chain alert the verifier shows; the service refuses to serve it);
6. the auditor's replay of every event, with its verdict.

Each step prints one line; the first step whose outcome is not the expected one raises
:class:`DemoStepFailed` (exit 1). Things outside the API are named as such: the partner signs its
stamp with its own key and reads its on-chain nonce from the node, the attacker writes to disk, and
the auditor replays the chain itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from ledger_api.chain.deploy import Deployment
from ledger_api.chain.keystore import Keystore
from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.config import Settings
from ledger_api.errors import ConfigurationError, LedgerError

__all__ = ["DemoStep", "DemoStepFailed", "add_demo_parser", "run_demo"]

_T = TypeVar("_T")

#: Channel and stamp names (contracts/LedgerTypes.sol).
CHANNELS = ("NONE", "GREEN", "YELLOW", "RED")
STAMP_TYPES = (
    "DOCUMENT_CHECK",
    "PHYSICAL_EXAM",
    "XRAY_SCAN",
    "LAB_TEST",
    "QUARANTINE",
    "EXPORT_CLEARANCE",
    "ORIGIN_VERIFICATION",
    "SANITARY_CHECK",
)
#: Supporting document type codes the demo uses.
INVOICE, PACKING_LIST, CERTIFICATE_OF_ORIGIN = 1, 2, 3
#: The consortium's audit office: traders share their declarations with it for post-clearance audit.
AUDITOR = "CONSORTIUM-AUDIT"
#: Integrity-watch alert reason codes (docs/oracles/integrity.md).
TAMPER_REASONS = {4101: "tampered", 4102: "missing", 4103: "commitment-mismatch"}

class DemoStepFailed(LedgerError):
    """A demo step's outcome was not the expected one."""

    code = "demo-step-failed"

    def diagnostics(self) -> str:
        return f"{self}\nThe logs of the running system are under <var_dir>/logs (`ledger run`)."


@dataclass
class DemoStep:
    """One printed step: what happened, the id it concerns and the resulting status."""

    number: int
    actor: str
    action: str
    ref: str
    status: str
    facts: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The step as one line of output."""
        ref = f" {self.ref}" if self.ref else ""
        return f"[{self.number:02d}] {self.actor:<22} {self.action}{ref} → {self.status}"


def _stamps(mask: int) -> list[str]:
    return [name for bit, name in enumerate(STAMP_TYPES) if mask & (1 << bit)]


def _short(value: str) -> str:
    return value[:10] + "…" + value[-4:] if len(value) > 20 else value


class _Scenario:
    """The scenario's state: clients per identity, the steps printed so far."""

    def __init__(
        self,
        *,
        base_url: str,
        feed_url: str,
        rpc_url: str,
        integrity_url: str,
        settings: Settings,
        out: IO[str],
        timeout: float,
        ipfs_repo: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.integrity_url = integrity_url
        self.ipfs_repo = ipfs_repo
        self.feed_url = feed_url.rstrip("/")
        self.rpc_url = rpc_url
        self.settings = settings
        self.out = out
        self.timeout = timeout
        self.steps: list[DemoStep] = []
        self.keystore = Keystore.from_settings(settings)
        record_path = settings.var_dir / "deployment.json"
        if not record_path.exists():
            raise ConfigurationError(f"no deployment record at {record_path}: start the system with `ledger run`")
        self.deployment = Deployment.load(record_path)
        self._clients: dict[str, LedgerHttpClient] = {}
        self.tag = time.strftime("%y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(2).upper()

    # ------------------------------------------------------------------ plumbing

    def client(self, label: str) -> LedgerHttpClient:
        """The signed-request client of the identity ``label`` (its key from the keystore)."""
        if label not in self._clients:
            if not self.keystore.has_signer(label):
                raise ConfigurationError(f"no key {label!r} in {self.settings.var_dir}/keys")
            key = bytes(self.keystore.signer(label).key)
            self._clients[label] = LedgerHttpClient(base_url=self.base_url, private_key=key)
        return self._clients[label]

    def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            client.close()

    def step(self, actor: str, action: str, ref: str, status: str, **facts: Any) -> DemoStep:
        """Record and print one step."""
        step = DemoStep(len(self.steps) + 1, actor, action, ref, status, facts)
        self.steps.append(step)
        print(step.line(), file=self.out, flush=True)
        return step

    def fail(self, what: str) -> DemoStepFailed:
        """The error for step ``len(steps) + 1``."""
        return DemoStepFailed(f"demo step {len(self.steps) + 1} failed: {what}")

    def until(self, what: str, probe: Callable[[], _T | None], *, timeout: float | None = None) -> _T:
        """Poll ``probe`` until it returns a value (``None`` = not yet; a 404 while the index catches up too)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last = ""
        while True:
            try:
                value = probe()
                if value is not None:
                    return value
            except ApiProblem as exc:
                if exc.status not in (404, 429, 503):
                    raise self.fail(f"{what}: {exc}") from exc
                last = str(exc)
            if time.monotonic() > deadline:
                raise self.fail(f"{what}: not reached within {timeout or self.timeout:.0f} s {last}".rstrip())
            time.sleep(0.5)

    def settled(self, client: LedgerHttpClient, accepted: dict[str, Any], what: str) -> dict[str, Any]:
        """Wait for a tracked write to be final; a failed write fails the step with its decoded error."""
        try:
            result = client.wait_settled(accepted["tracking_id"], timeout=self.timeout, poll=0.25)
        except TimeoutError as exc:
            raise self.fail(f"{what}: {exc}") from exc
        if result["status"] != "final":
            raise self.fail(f"{what}: the write {result['status']}: {result.get('error')}")
        return result

    def declaration(
        self,
        client: LedgerHttpClient,
        declaration_id: str,
        ready: Callable[[dict[str, Any]], bool] = lambda d: True,
        what: str = "",
    ) -> dict[str, Any]:
        """The declaration view once the index shows it in a state ``ready`` accepts."""

        def probe() -> dict[str, Any] | None:
            view = client.declaration(declaration_id)
            return view if ready(view) else None

        return self.until(what or f"declaration {_short(declaration_id)}", probe)

    # ------------------------------------------------------------------ building blocks

    def submit(
        self,
        trader: str,
        reference: str,
        goods: list[dict[str, Any]],
        currency: str,
        documents: list[tuple[int, str, bytes]],
        **extra: Any,
    ) -> dict[str, Any]:
        """A trader files a declaration; returns its view once indexed."""
        client = self.client(trader)
        declaration = {
            "jurisdiction": "CN-TJ-CUSTOMS",
            "local_reference": f"LRN-{self.tag}-{reference}",
            "currency": currency,
            "goods": goods,
            **extra,
        }
        accepted = client.submit_declaration(declaration, documents, share_with=[AUDITOR])
        self.settled(client, accepted, f"submission {reference}")
        view = self.declaration(client, accepted["declaration_id"])
        kinds = ", ".join(
            {INVOICE: "invoice", PACKING_LIST: "packing list", CERTIFICATE_OF_ORIGIN: "certificate of origin"}.get(
                k, str(k)
            )
            for k, _, _ in documents
        )
        self.step(
            trader,
            f"declares {reference} ({kinds}), tracking {_short(accepted['tracking_id'])}:",
            view["declaration_id"],
            view["status"],
        )
        return view

    def channel(self, trader: str, view: dict[str, Any]) -> dict[str, Any]:
        """Wait for the risk oracle's channel (read by the declarant)."""
        channelled = self.declaration(
            self.client(trader),
            view["declaration_id"],
            lambda d: d["channel"] != 0,
            what=f"risk channel of {_short(view['declaration_id'])}",
        )
        stamps = _stamps(channelled["required_stamps"]) or ["no inspection"]
        self.step(
            "risk oracle",
            f"channels {_short(view['declaration_id'])}:",
            f"requires {', '.join(stamps)}",
            CHANNELS[channelled["channel"]],
            channel=CHANNELS[channelled["channel"]],
            required=stamps,
        )
        return channelled

    def accept(self, view: dict[str, Any], mrn: str, expect: tuple[str, ...] = ("ACCEPTED",)) -> dict[str, Any]:
        """The Tianjin customs officer accepts the declaration and assigns its MRN."""
        customs = self.client("cn-tj-customs-signer-0")
        accepted = customs.accept_declaration(view["declaration_id"], mrn)
        self.settled(customs, accepted, f"acceptance of {_short(view['declaration_id'])}")
        after = self.declaration(
            customs,
            view["declaration_id"],
            lambda d: d["status"] in expect,
            what=f"status {' or '.join(expect)} after acceptance",
        )
        self.step(
            "CN-TJ-CUSTOMS officer",
            f"accepts {_short(view['declaration_id'])} as MRN {mrn}:",
            "",
            after["status"],
            mrn=mrn,
        )
        return after

    def stamp(self, label: str, declaration_id: str, stamp_type: str, result: str, report: bytes) -> str:
        """An inspection agency stamps the declaration through the API; returns the stamp id."""
        client = self.client(label)
        accepted = client.record_stamp(declaration_id, stamp_type=stamp_type, result=result, report=report)
        self.settled(client, accepted, f"{stamp_type} stamp")
        stamp_id = str(accepted["stamp_id"])
        self.step(
            label.removesuffix("-signer-0").upper(),
            f"stamps {stamp_type} {result} (report {_short(stamp_id)}):",
            _short(declaration_id),
            "recorded",
            stamp_id=stamp_id,
        )
        return stamp_id

    def timeline_has(self, declaration_id: str, event: str, needle: str) -> dict[str, Any]:
        """Wait for an event of the declaration's timeline (as its customs sees it) naming ``needle``."""
        customs = self.client("cn-tj-customs-signer-0")

        def probe() -> dict[str, Any] | None:
            for entry in customs.timeline(declaration_id):
                if entry["name"] == event and needle.lower() in json.dumps(entry["args"]).lower():
                    return entry
            return None

        return self.until(f"{event} {_short(needle)} on the timeline", probe)

    # ------------------------------------------------------------------ the partner's off-line stamp

    def _nonce(self, signer: str) -> int:
        """The signer's EIP-712 nonce, read from the ledger contract (the partner's own node query)."""
        from ledger_api.chain._tx_calls import decode_result, encode_call

        payload = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [{"to": self.deployment.ledger, "data": "0x" + encode_call("nonces", (signer,)).hex()}, "latest"],
        }
        answer = httpx.post(self.rpc_url, json=payload, timeout=10).json()
        return int(decode_result("nonces", bytes.fromhex(str(answer["result"])[2:]))[0])

    def partner_signed_stamp(self, label: str, declaration_id: str, stamp_type: str, report: bytes) -> dict[str, Any]:
        """A feed item: the partner agency signs a PASS stamp off-line (EIP-712) with its own key."""
        from eth_account import Account
        from eth_account.messages import encode_typed_data

        from ledger_api.chain.typed_data import stamp_typed_data
        from ledger_api.documents import Cid, content_store

        account = self.keystore.signer(label)
        # The partner keeps its report on its own node; in the embedded default that is the shared store.
        stored = content_store(self.settings).put(report)
        report_cid = Cid.parse(stored.cid).to_bytes()
        signed_at = int(time.time()) - 2
        report_sha256 = _sha256(report)
        message: dict[str, Any] = {
            "declarationId": bytes.fromhex(declaration_id[2:]),
            "stampType": STAMP_TYPES.index(stamp_type),
            "result": 1,
            "reportSha256": report_sha256,
            "reportCid": report_cid,
            "signer": account.address,
            "signedAt": signed_at,
            "nonce": self._nonce(account.address),
            "deadline": signed_at + 3600,
        }
        typed = encode_typed_data(
            full_message=stamp_typed_data(chain_id=self.deployment.chain_id, ledger=self.deployment.ledger,
                                          message=message)
        )  # fmt: skip
        signature = bytes(Account.sign_message(typed, bytes(account.key)).signature)
        return {
            "declaration_id": declaration_id,
            "stamp_type": stamp_type,
            "result": "PASS",
            "report_sha256": "0x" + report_sha256.hex(),
            "report_cid": "0x" + report_cid.hex(),
            "signer": account.address,
            "signed_at": signed_at,
            "nonce": message["nonce"],
            "deadline": message["deadline"],
            "signature": "0x" + signature.hex(),
        }

    # ------------------------------------------------------------------ the scenario

    def run(self) -> None:
        """All steps, in order."""
        health = LedgerHttpClient(base_url=self.base_url, token="unused").health()
        if health.get("status") != "ok":
            raise self.fail(f"the API at {self.base_url} is not healthy: {health.get('status')}")
        self.step("demo", f"API at {self.base_url} healthy; run tag", self.tag, "ok")
        released = self.food_consignment()
        self.green_consignment()
        self.seizure()
        self.amendment()
        tampered = self.tamper(released)
        self.audit(tampered)

    def food_consignment(self) -> dict[str, Any]:
        """Declaration with three documents → channel → acceptance → stamps (one relayed) → release."""
        trader = "trader-tj-foods"
        documents = [
            (
                INVOICE,
                "invoice.pdf",
                f"%PDF commercial invoice INV-{self.tag}: 12,000 kg frozen plaice, EUR 48,000".encode(),
            ),
            (
                PACKING_LIST,
                "packing-list.pdf",
                f"%PDF packing list PL-{self.tag}: 2 x 40' reefer, 1,200 cartons".encode(),
            ),
            (
                CERTIFICATE_OF_ORIGIN,
                "certificate-of-origin.pdf",
                f"%PDF certificate of origin CO-{self.tag}: Kingdom of the Netherlands".encode(),
            ),
        ]
        goods = [{"hs_code": "030389", "description": "frozen plaice", "origin": "NL", "value": 48000.0}]
        view = self.submit(trader, "FISH", goods, "EUR", documents, consignor="Noordzee Visexport B.V.")
        if view["status"] != "SUBMITTED":
            raise self.fail(f"expected SUBMITTED, got {view['status']}")
        channelled = self.channel(trader, view)
        required = _stamps(channelled["required_stamps"])
        if CHANNELS[channelled["channel"]] not in ("YELLOW", "RED") or "SANITARY_CHECK" not in required:
            raise self.fail(f"expected YELLOW/RED with SANITARY_CHECK for food, got {CHANNELS[channelled['channel']]}")
        declaration_id = view["declaration_id"]
        self.accept(view, f"26CNTJ{self.tag}F")
        stamp_ids = [
            self.stamp(
                "cn-tj-ciq-lab-signer-0",
                declaration_id,
                kind,
                "PASS",
                f"%PDF {kind} report for {declaration_id}: compliant".encode(),
            )
            for kind in required
            if kind != "SANITARY_CHECK"
        ]
        # The Dutch food authority inspected the catch before export and signed its sanitary stamp
        # off-line; its item reaches the ledger through the partner bridge's feed (NL-RTM-CUSTOMS).
        item = self.partner_signed_stamp(
            "nl-nvwa-signer-0",
            declaration_id,
            "SANITARY_CHECK",
            f"%PDF NVWA export health certificate for {declaration_id}".encode(),
        )
        answer = httpx.post(
            f"{self.feed_url}/v1/stamps",
            content=json.dumps(item).encode(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
        if answer.status_code != 202:
            raise self.fail(f"the bridge feed refused the signed stamp: {answer.status_code} {answer.text}")
        digest = answer.json()["digest"]
        self.step(
            "NL-NVWA (partner)",
            "signs SANITARY_CHECK PASS off-line; bridge feed",
            _short(digest),
            answer.json()["status"],
            digest=digest,
        )
        relayed = self.timeline_has(declaration_id, "StampRecorded", item["report_sha256"])
        stamp_ids.append(item["report_sha256"])
        self.step(
            "bridge (NL-RTM-CUSTOMS)",
            f"relays it on chain in block {relayed['block_number']}:",
            _short(item["report_sha256"]),
            "recorded",
            relayer_event=relayed["args"],
        )
        for stamp_id in stamp_ids:  # the release cites every PASS stamp: wait until the index has them all
            self.timeline_has(declaration_id, "StampRecorded", stamp_id)
        customs = self.client("cn-tj-customs-signer-0")
        accepted = customs.decide(declaration_id, "RELEASE", pass_stamps=stamp_ids)
        self.settled(customs, accepted, "release")
        after = self.declaration(customs, declaration_id, lambda d: d["status"] == "RELEASED", what="RELEASED")
        self.step(
            "CN-TJ-CUSTOMS officer",
            f"releases, citing {len(stamp_ids)} PASS stamps:",
            _short(declaration_id),
            after["status"],
        )
        return after

    def green_consignment(self) -> None:
        """An AEO trader's low-risk consignment: GREEN without inspections, released on acceptance.

        The rule set samples 1.5 % of AEO declarations at random (verifiably, from the block hash);
        a sampled consignment is reported and the trader's next one is used instead (at most 3).
        """
        trader = "trader-tj-electronics"
        for attempt in range(1, 4):
            goods = [
                {
                    "hs_code": "850760",
                    "description": "lithium-ion battery packs",
                    "origin": "CN",
                    "value": 12000.0 + attempt,
                }
            ]
            invoice = (INVOICE, "invoice.pdf", f"%PDF invoice INV-{self.tag}-B{attempt}: 400 battery packs".encode())
            view = self.submit(trader, f"BATT{attempt}", goods, "USD", [invoice])
            channelled = self.channel(trader, view)
            if CHANNELS[channelled["channel"]] == "GREEN" and channelled["required_stamps"] == 0:
                after = self.accept(view, f"26CNTJ{self.tag}G{attempt}", expect=("RELEASED",))
                if after["status"] != "RELEASED":
                    raise self.fail(f"a GREEN declaration was not released on acceptance: {after['status']}")
                return
            self.step("demo", "consignment picked by the random sample; the trader's next one:", "", "skipped")
        raise self.fail("three GREEN candidates in a row were sampled for inspection")

    def seizure(self) -> None:
        """Declared cartridges: RED → acceptance → X-ray FAIL → HOLD → SEIZE with two customs signers."""
        trader = "trader-tj-electronics"
        goods = [{"hs_code": "930630", "description": "sporting cartridges", "origin": "CN", "value": 8000.0}]
        invoice = (INVOICE, "invoice.pdf", f"%PDF invoice INV-{self.tag}-C: 20 cases sporting cartridges".encode())
        view = self.submit(trader, "CART", goods, "USD", [invoice])
        channelled = self.channel(trader, view)
        if CHANNELS[channelled["channel"]] != "RED":
            raise self.fail(f"expected RED for HS 93, got {CHANNELS[channelled['channel']]}")
        declaration_id = view["declaration_id"]
        self.accept(view, f"26CNTJ{self.tag}C")
        self.stamp(
            "cn-tj-ciq-lab-signer-0",
            declaration_id,
            "XRAY_SCAN",
            "FAIL",
            f"%PDF X-ray image analysis for {declaration_id}: undeclared military-grade ammunition".encode(),
        )
        first, second = self.client("cn-tj-customs-signer-0"), self.client("cn-tj-customs-signer-1")
        self.settled(first, first.decide(declaration_id, "HOLD", reason_code=201), "hold")
        held = self.declaration(first, declaration_id, lambda d: d["status"] == "HELD", what="HELD")
        self.step(
            "CN-TJ-CUSTOMS officer 1", "holds the consignment (reason 201):", _short(declaration_id), held["status"]
        )
        self.settled(first, first.decide(declaration_id, "SEIZE", reason_code=301), "seizure proposal")
        pending = self.declaration(first, declaration_id, what="still HELD")
        if pending["status"] != "HELD":
            raise self.fail(f"one signer alone changed the status to {pending['status']} (four eyes expected)")
        self.step(
            "CN-TJ-CUSTOMS officer 1",
            "proposes SEIZE (dual control: 1 of 2 signers):",
            _short(declaration_id),
            pending["status"],
        )
        self.settled(second, second.approve_decision(declaration_id), "seizure approval")
        seized = self.declaration(first, declaration_id, lambda d: d["status"] == "SEIZED", what="SEIZED")
        self.step("CN-TJ-CUSTOMS officer 2", "approves the seizure (2 of 2):", _short(declaration_id), seized["status"])

    def amendment(self) -> None:
        """A trader corrects a declaration before release: the new version supersedes the old."""
        trader = "trader-tj-electronics"
        client = self.client(trader)
        goods = [{"hs_code": "851713", "description": "smartphones", "origin": "CN", "value": 30000.0}]
        invoice = (INVOICE, "invoice.pdf", f"%PDF invoice INV-{self.tag}-P: 100 smartphones".encode())
        view = self.submit(trader, "PHONE", goods, "USD", [invoice])
        corrected_goods = [{**goods[0], "value": 33000.0}]
        corrected = (INVOICE, "invoice.pdf", f"%PDF invoice INV-{self.tag}-P rev 1: 110 smartphones".encode())
        declaration = {
            "jurisdiction": "CN-TJ-CUSTOMS",
            "local_reference": f"LRN-{self.tag}-PHONE",
            "currency": "USD",
            "goods": corrected_goods,
            "amends": view["declaration_id"],
        }
        accepted = client.amend_declaration(view["declaration_id"], declaration, [corrected], share_with=[AUDITOR])
        self.settled(client, accepted, "amendment")
        new = self.declaration(client, accepted["declaration_id"], what="the amended version")
        old = self.declaration(client, view["declaration_id"], lambda d: d["status"] == "SUPERSEDED", what="SUPERSEDED")
        if new["version"] != 2 or new["previous_id"] != view["declaration_id"]:
            raise self.fail(f"amendment has version {new['version']}, previous {new['previous_id']}")
        self.step(
            trader,
            f"amends {_short(view['declaration_id'])} (now {old['status']}) → version 2:",
            new["declaration_id"],
            new["status"],
        )

    def tamper(self, released: dict[str, Any]) -> str:
        """SIMULATED ATTACK: flip a byte of a stored envelope; the integrity watch raises an alert.
        Returns the tampered document's sha256."""
        from ledger_api._jsipfs import JsIpfs
        from ledger_api.documents import Cid, LocalStore

        document = next(d for d in released["documents"] if d["document_type"] == CERTIFICATE_OF_ORIGIN)
        cid = Cid.from_bytes(bytes.fromhex(document["cid"][2:]))
        block: Path | None
        if not self.settings.ipfs_api:
            store = LocalStore(self.settings.var_dir / "store")
            block = store._block_path(cid)  # noqa: SLF001 - the attacker goes behind the store's back
        elif self.ipfs_repo is not None:  # the js-ipfs daemon of `ledger run --ipfs`: its repo's block file
            block = JsIpfs(repo=self.ipfs_repo, api_port=0, gateway_port=0, rpc_port=0, swarm_port=0).block_file(
                cid.block_key
            )
        else:
            raise self.fail("the tamper step needs the embedded store or the js-ipfs repo of `ledger run --ipfs`")
        if block is None or not block.is_file():
            raise self.fail(f"no stored block file for {cid}")
        mode = block.stat().st_mode
        os.chmod(block, mode | 0o200)
        with open(block, "r+b") as handle:
            position = max(0, block.stat().st_size // 2)
            handle.seek(position)
            original = handle.read(1)
            handle.seek(position)
            handle.write(bytes([original[0] ^ 0x01]))
        os.chmod(block, mode)
        self.step(
            "ATTACKER (simulated)",
            f"flips byte {position} of the certificate of origin's envelope in",
            str(block.relative_to(self.settings.var_dir.parent))
            if block.is_relative_to(self.settings.var_dir.parent)
            else str(block),
            "tampered on disk",
        )
        customs = self.client("cn-tj-customs-signer-0")
        sha256 = document["sha256"]

        def alerted() -> dict[str, Any] | None:
            verdict = customs.verify_hash(sha256)
            alerts = [c for c in verdict["checks"] if c["name"] == "alerts" and c["outcome"] != "pass"]
            return verdict if alerts else None

        verdict = self.until("an integrity alert on the tampered document", alerted, timeout=max(self.timeout, 120))
        alert = next(c for c in verdict["checks"] if c["name"] == "alerts")
        copy = next((c for c in verdict["checks"] if c["name"] == "stored copy"), None)
        copy_note = f" (check 2 stored copy: {copy['outcome']})" if copy is not None else ""
        self.step(
            "integrity watch",
            f"raises an alert on {_short(sha256)}; verifier{copy_note}:",
            alert["detail"],
            verdict["status"],
            verdict=verdict["status"],
        )
        if self.integrity_url:  # the watch's own report names the finding (its /status endpoint)
            finding = self.until("the integrity watch's finding", lambda: self._integrity_finding(sha256))
            reason = finding.split(":")[1]
            if reason not in TAMPER_REASONS.values():
                raise self.fail(f"unexpected integrity finding {finding}")
            code = next(code for code, name in TAMPER_REASONS.items() if name == reason)
            self.step(
                "integrity watch",
                "GET /status (operator view): finding",
                f"{reason} ({code}) on {_short(sha256)}",
                "degraded",
                finding=finding,
            )
        try:
            customs.fetch_document(sha256)
        except ApiProblem as exc:
            self.step(
                "CN-TJ-CUSTOMS officer",
                f"fetches the document: refused ({exc.problem_code}):",
                _short(sha256),
                f"HTTP {exc.status}",
            )
        else:
            raise self.fail("the service served the tampered document")
        return str(sha256)

    def _integrity_finding(self, sha256: str) -> str | None:
        """The integrity watch's finding key on ``sha256``, from its status endpoint (``None`` if none yet)."""
        status = httpx.get(self.integrity_url, timeout=10).json()
        keys: list[str] = status.get("details", {}).get("finding_keys", [])
        return next((key for key in keys if f":{sha256.lower()}:" in key.lower()), None)

    def audit(self, tampered: str) -> None:
        """The auditor replays every event from deployment, re-derives the channels, re-fetches every
        anchored document, and prints the verdict: the tampered document must be the only finding."""
        from ledger_api.audit import DeclarationReader, DocumentCheck, replay, write_report
        from ledger_api.documents import VAULT_FILE, AgencyPrivateKey, VaultKeyrings, content_store

        # The auditor opens the declarations shared with it (its X25519 key, the sealing vault's key
        # wraps) so every channel is re-derived from its anchored rule set and the declaration content.
        label = AUDITOR.lower()
        store = content_store(self.settings)
        keyrings = VaultKeyrings(self.settings.var_dir / VAULT_FILE)
        try:
            reader = (
                DeclarationReader(
                    agency=AUDITOR, private_key=AgencyPrivateKey(self.keystore.encryption_key(label)), keyrings=keyrings
                )
                if self.keystore.has_encryption_key(label)
                else None
            )
            documents = DocumentCheck({"ipfs" if self.settings.ipfs_api else "embedded": store}, reader=reader)
            report = replay(
                self.rpc_url, self.deployment, rule_store=store, reader=reader, document_check=documents, progress=None
            )
        finally:
            keyrings.close()
        path = self.settings.var_dir / "audit" / "report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_report(report, str(path))
        channels = report.checks.get("channel-rule-set", {}).get("verdicts", {})
        codes = sorted({f.code for f in report.errors})
        found = [f for f in report.errors if tampered.lower() in json.dumps(f.to_json()).lower()]
        verdict = "OK" if report.ok else "FAILED"
        self.step(
            "CONSORTIUM-AUDIT auditor",
            f"replays {report.throughput.events} events (blocks {report.from_block}..{report.to_block}), digest "
            f"{'=' if report.digest_match else '≠'} views, channels re-derived {json.dumps(channels, sort_keys=True)}, "
            f"every document re-fetched; errors {codes or 'none'}, "
            f"{len(report.findings) - len(report.errors)} warnings; report",
            str(path),
            verdict,
            ok=report.ok,
            errors=[f.code for f in report.errors],
            channels=channels,
            tampered_found=bool(found),
        )
        if report.digest_match is not True or codes != ["document-tampered"] or not found:
            raise DemoStepFailed(
                f"the audit replay should find exactly the tampered document(s) {_short(tampered)}; it found "
                f"{codes} (digest match: {report.digest_match}; see {path})"
            )
        self.step("CONSORTIUM-AUDIT auditor", "verdict: the tampered certificate of origin is the finding:",
                  _short(tampered), "as expected")  # fmt: skip


def _sha256(content: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(content).digest()


def run_demo(
    *,
    base_url: str,
    feed_url: str,
    rpc_url: str,
    settings: Settings,
    integrity_url: str = "",
    ipfs_repo: Path | None = None,
    out: IO[str] = sys.stdout,
    timeout: float = 90.0,
    steps: list[DemoStep] | None = None,
) -> list[DemoStep]:
    """Run the scenario against a running system; returns the steps (raises :class:`DemoStepFailed`).

    ``integrity_url`` is the integrity watch's ``/status`` (its finding is shown when given);
    ``ipfs_repo`` the js-ipfs repo of ``ledger run --ipfs`` (where the tamper step writes).
    ``steps``, when given, receives each step as it completes (kept when a later step fails).
    """
    scenario = _Scenario(
        base_url=base_url,
        feed_url=feed_url,
        rpc_url=rpc_url,
        integrity_url=integrity_url,
        ipfs_repo=ipfs_repo,
        settings=settings,
        out=out,
        timeout=timeout,
    )
    if steps is not None:
        scenario.steps = steps
    try:
        scenario.run()
    finally:
        scenario.close()
    return scenario.steps


# ---------------------------------------------------------------------------------------- CLI


def add_demo_parser(subparsers: Any) -> None:
    """Add ``demo`` to the ``ledger`` command."""
    demo = subparsers.add_parser("demo", help="run the demo scenario against a running `ledger run` (HTTP API)")
    demo.add_argument("--base-url", default=None, help="API base URL (default: from var/run.json, else :8000)")
    demo.add_argument("--feed-url", default=None, help="partner bridge feed URL (default: from var/run.json)")
    demo.add_argument("--integrity-url", default=None, help="integrity watch /status (default: from var/run.json)")
    demo.add_argument("--rpc-url", default=None, help="JSON-RPC endpoint (default: from var/run.json / settings)")
    demo.add_argument("--timeout", type=float, default=90.0, help="seconds each step may wait (default %(default)s)")
    demo.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the steps as JSON here")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigurationError(str(exc).splitlines()[0] if str(exc) else "invalid settings") from exc
    run_file = settings.var_dir / "run.json"
    recorded: dict[str, Any] = json.loads(run_file.read_text()) if run_file.exists() else {}
    base_url = args.base_url or recorded.get("api") or "http://127.0.0.1:8000"
    feed_url = args.feed_url or recorded.get("feed") or "http://127.0.0.1:9100"
    rpc_url = args.rpc_url or recorded.get("rpc") or settings.effective_rpc_url
    integrity = recorded.get("oracles", {}).get("integrity", "").removesuffix("/health")
    integrity_url = args.integrity_url or (integrity + "/status" if integrity else "")
    if recorded.get("ipfs_api") and not settings.ipfs_api:  # `ledger run --ipfs`: its daemon is the store
        settings = settings.model_copy(update={"ipfs_api": recorded["ipfs_api"]})
    ipfs_repo = Path(recorded["ipfs_repo"]) if recorded.get("ipfs_repo") else None
    steps: list[DemoStep] = []
    try:
        run_demo(
            base_url=base_url,
            feed_url=feed_url,
            rpc_url=rpc_url,
            integrity_url=integrity_url,
            ipfs_repo=ipfs_repo,
            settings=settings,
            timeout=args.timeout,
            steps=steps,
        )
    except httpx.HTTPError as exc:
        raise DemoStepFailed(
            f"cannot reach the running system ({type(exc).__name__}: {exc}); is `ledger run` up?"
        ) from exc
    finally:
        if args.json is not None:
            args.json.write_text(json.dumps([asdict(s) for s in steps], indent=2) + "\n")
    print(f"ledger demo: all {len(steps)} steps as expected")
    return 0
