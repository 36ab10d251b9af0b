"""Governance: governors propose, approve and execute membership changes of the AgencyRegistry.

Only governor keys (``isGovernor`` on the registry) may call these routes, and only through a
service that holds their key (``governor-N`` in its keystore). A proposal is one of a fixed set of
typed actions on the registry's governed functions; the service builds the call data from the
committed ABI, so no arbitrary call data is ever proposed. Transactions are sent synchronously and
answered once mined (200, with the transaction hash and block); a refusal by the registry comes back
as a ``contract-revert`` problem naming its custom error.

Trader registration is not here: ``registerTrader`` is operated by a TRADER_REGISTRAR agency key,
not by governance.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from eth_utils.address import is_checksum_address, to_checksum_address
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, model_validator

from ledger_api.api.deps import CurrentIdentity, ReadModelDep
from ledger_api.api.governance_client import GovernanceClient, GovernanceReceipt, decode_registry_call, registry_call
from ledger_api.chain._tx_calls import LedgerCall
from ledger_api.chain.consortium import Role
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.errors import ConfigurationError, Forbidden, ProposalNotFound, TransactionError
from ledger_api.models import Identity

__all__ = ["GovernanceTransaction", "ProposalRequest", "ProposalView", "router"]

router = APIRouter(prefix="/v1/governance", tags=["governance"])

ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1, description="proposal id (1-based)")]

_STATUS = {"ACTIVE": 1, "SUSPENDED": 2, "REMOVED": 3}  # AgencyStatus


def _address(value: str) -> str:
    if value[2:] != value[2:].lower() and value[2:] != value[2:].upper() and not is_checksum_address(value):
        raise ValueError("mixed-case address with a wrong EIP-55 checksum")
    return to_checksum_address(value)


def _utf8_max_256(value: str) -> str:
    if len(value.encode()) > 256:
        raise ValueError("at most 256 bytes (UTF-8)")
    return value


def _nonzero_key(value: str) -> str:
    if not any(bytes.fromhex(value[2:])):
        raise ValueError("the encryption key must not be zero")
    return value


AgencyCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", description="agency code, e.g. DE-HH-CUSTOMS")]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(_address)]
Uint64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
RoleName = Literal[
    "CUSTOMS_AUTHORITY", "INSPECTION_AGENCY", "PARTNER_CUSTOMS", "RISK_ORACLE", "AUDITOR", "TRADER_REGISTRAR"
]
Roles = Annotated[list[RoleName], Field(min_length=1, max_length=len(Role), description="role names")]
Name = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_utf8_max_256)]
Endpoint = Annotated[str, Field(max_length=256), AfterValidator(_utf8_max_256)]
EncryptionKey = Annotated[
    str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="X25519 public key, 0x-hex"), AfterValidator(_nonzero_key)
]


def _role_mask(roles: list[RoleName]) -> int:
    mask = 0
    for name in roles:
        mask |= 1 << int(Role[name])
    return mask


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def call(self) -> LedgerCall:
        """The AgencyRegistry call this action proposes."""
        raise NotImplementedError


class AddAgency(_Action):
    """``addAgency``: a new agency (ACTIVE) with its roles and document encryption key."""

    action: Literal["add_agency"]
    agency_id: AgencyCode
    name: Name
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    roles: Roles
    encryption_key: EncryptionKey
    ipfs_endpoint: Endpoint = ""

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        return registry_call("addAgency", [
            agency_id_bytes(self.agency_id), self.name, self.country.encode("ascii"), _role_mask(self.roles),
            bytes.fromhex(self.encryption_key[2:]), self.ipfs_endpoint,
        ])  # fmt: skip


class SetAgencyRoles(_Action):
    """``setAgencyRoles``: replace an agency's roles."""

    action: Literal["set_agency_roles"]
    agency_id: AgencyCode
    roles: Roles

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        return registry_call("setAgencyRoles", [agency_id_bytes(self.agency_id), _role_mask(self.roles)])


class SetAgencyStatus(_Action):
    """``setAgencyStatus``: suspend, reactivate or remove (final) an agency."""

    action: Literal["set_agency_status"]
    agency_id: AgencyCode
    status: Literal["ACTIVE", "SUSPENDED", "REMOVED"]

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        return registry_call("setAgencyStatus", [agency_id_bytes(self.agency_id), _STATUS[self.status]])


class UpdateAgencyProfile(_Action):
    """``updateAgencyProfile``: an agency's name, encryption key and IPFS endpoint."""

    action: Literal["update_agency_profile"]
    agency_id: AgencyCode
    name: Name
    encryption_key: EncryptionKey
    ipfs_endpoint: Endpoint = ""

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        return registry_call("updateAgencyProfile", [
            agency_id_bytes(self.agency_id), self.name, bytes.fromhex(self.encryption_key[2:]), self.ipfs_endpoint,
        ])  # fmt: skip


class AddSignerKey(_Action):
    """``addSignerKey``: a new signer key of an agency, valid in ``[valid_from, valid_until)``."""

    action: Literal["add_signer_key"]
    agency_id: AgencyCode
    signer: Address
    valid_from: Uint64 | None = Field(default=None, description="unix time; default: when the proposal is made")
    valid_until: Uint64

    @model_validator(mode="after")
    def _window(self) -> AddSignerKey:
        if self.valid_from is not None and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")
        return self

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        valid_from = self.valid_from if self.valid_from is not None else int(time.time())
        return registry_call(
            "addSignerKey", [agency_id_bytes(self.agency_id), self.signer, valid_from, self.valid_until]
        )


class SetSignerKeyExpiry(_Action):
    """``setSignerKeyExpiry``: move a key's end of validity (rotation; past signatures stay valid)."""

    action: Literal["set_signer_key_expiry"]
    signer: Address
    valid_until: Uint64

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        return registry_call("setSignerKeyExpiry", [self.signer, self.valid_until])


class ReportKeyCompromised(_Action):
    """``reportKeyCompromised``: void a key's signatures from ``compromised_at`` on (revocation)."""

    action: Literal["report_key_compromised"]
    signer: Address
    compromised_at: Uint64

    def call(self) -> LedgerCall:
        """See :meth:`_Action.call`."""
        return registry_call("reportKeyCompromised", [self.signer, self.compromised_at])


GovernanceAction = Annotated[
    AddAgency
    | SetAgencyRoles
    | SetAgencyStatus
    | UpdateAgencyProfile
    | AddSignerKey
    | SetSignerKeyExpiry
    | ReportKeyCompromised,
    Field(discriminator="action"),
]


class ProposalRequest(RootModel[GovernanceAction]):
    """One membership action, chosen by its ``action`` field."""


class GovernanceTransaction(BaseModel):
    """A mined governance transaction."""

    model_config = ConfigDict(frozen=True)

    tx_hash: str
    block_number: int
    proposal_id: int | None = Field(description="the proposal created, approved or executed")
    events: list[str] = Field(description="names of the registry events the transaction emitted, in order")


class ProposalView(BaseModel):
    """A proposal as the read model knows it, with its call decoded."""

    model_config = ConfigDict(frozen=True)

    proposal_id: int
    proposer: str
    target: str
    call_data: str
    function: str | None = Field(description="the registry function proposed (null: not a registry call)")
    arguments: dict[str, Any]
    expires_at: int
    epoch: int
    block_number: int
    approvals: int
    approved_by: list[str] = Field(description="governors whose approval counts (the proposer first)")
    status: str = Field(description="open | executed | cancelled | expired")
    actions: list[dict[str, Any]]


async def _governor(identity: CurrentIdentity) -> Identity:
    if identity.kind != "governor":
        raise Forbidden("governance is for governor keys")
    return identity


CurrentGovernor = Annotated[Identity, Depends(_governor)]


def governance_of(request: Request) -> GovernanceClient:
    """The service's governance client (set up by :func:`ledger_api.api.service.build_service`)."""
    governance: GovernanceClient | None = getattr(request.app.state, "governance", None)
    if governance is None:
        raise ConfigurationError("this service sends no governance transactions")
    return governance


async def _send(request: Request, caller: Identity, call: LedgerCall) -> GovernanceReceipt:
    governance = governance_of(request)
    governance.require_custody(caller.address)
    return await run_in_threadpool(governance.transact, call, caller.address)


def _transaction(receipt: GovernanceReceipt, proposal_id: int | None) -> GovernanceTransaction:
    return GovernanceTransaction(
        tx_hash=receipt.tx_hash, block_number=receipt.block_number, proposal_id=proposal_id,
        events=[e.name for e in receipt.events],
    )  # fmt: skip


@router.post("/proposals", summary="Propose a membership change (governors)")
async def propose(
    body: ProposalRequest, caller: CurrentGovernor, request: Request, response: Response
) -> GovernanceTransaction:
    """``propose`` the action on the registry; the proposer's approval is counted."""
    governance = governance_of(request)
    inner = body.root.call()
    receipt = await _send(request, caller, registry_call("propose", [governance.registry, inner.calldata]))
    created = receipt.event("ProposalCreated")
    if created is None:
        raise TransactionError(f"{receipt.tx_hash} emitted no ProposalCreated")
    proposal_id = int(created.args["proposalId"])
    response.headers["Location"] = f"/v1/governance/proposals/{proposal_id}"
    return _transaction(receipt, proposal_id)


@router.post("/proposals/{proposal_id}/approvals", summary="Approve an open proposal (governors)")
async def approve(proposal_id: ProposalId, caller: CurrentGovernor, request: Request) -> GovernanceTransaction:
    """``approve`` the proposal as the calling governor."""
    return _transaction(await _send(request, caller, registry_call("approve", [proposal_id])), proposal_id)


@router.post("/proposals/{proposal_id}/execution", summary="Execute a proposal with enough approvals (governors)")
async def execute(proposal_id: ProposalId, caller: CurrentGovernor, request: Request) -> GovernanceTransaction:
    """``execute`` the proposal; the target's custom error comes back if the proposed call reverts."""
    return _transaction(await _send(request, caller, registry_call("execute", [proposal_id])), proposal_id)


def _readable(arguments: dict[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        if name == "agencyId" and isinstance(value, str):
            out[name] = bytes.fromhex(value[2:]).rstrip(b"\0").decode("ascii", "replace")
        elif name == "country" and isinstance(value, str):
            out[name] = bytes.fromhex(value[2:]).decode("ascii", "replace")
        else:
            out[name] = value
    return out


@router.get("/proposals/{proposal_id}", summary="A proposal and its approvals (governors)")
async def proposal(proposal_id: ProposalId, caller: CurrentGovernor, model: ReadModelDep) -> ProposalView:
    """The proposal from the read model (it trails the chain by a block or so)."""
    found = model.proposal(proposal_id)
    if found is None:
        raise ProposalNotFound(proposal_id)
    call_data = str(found["call_data"])
    decoded = decode_registry_call(bytes.fromhex(call_data.removeprefix("0x")))
    actions: list[dict[str, Any]] = list(found["actions"])
    approved_by = [str(found["proposer"])] + [str(a["actor"]) for a in actions if a["action"] == "approved"]
    if found["executed"]:
        status = "executed"
    elif found["cancelled"]:
        status = "cancelled"
    elif int(found["expires_at"]) <= time.time():
        status = "expired"
    else:
        status = "open"
    return ProposalView(
        proposal_id=proposal_id, proposer=found["proposer"], target=found["target"], call_data=call_data,
        function=decoded[0] if decoded else None, arguments=_readable(decoded[1]) if decoded else {},
        expires_at=found["expires_at"], epoch=found["epoch"], block_number=found["block_number"],
        approvals=len(approved_by), approved_by=approved_by, status=status, actions=actions,
    )  # fmt: skip
