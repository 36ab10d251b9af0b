"""Who is in a consortium: agencies (roles, signer labels), traders, governors, dual control.

A :class:`ConsortiumSpec` is what :func:`ledger_api.chain.deploy_consortium` bootstraps. Keys are
referred to by keystore label, never by value. :func:`default_consortium` is the embedded demo:
two customs administrations (Tianjin, Rotterdam), two inspection agencies, a risk oracle, an
auditor, three traders and three governors with a 2-of-3 threshold.
"""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AgencySpec", "ConsortiumSpec", "Role", "TraderSpec", "default_consortium"]


class Role(IntEnum):
    """Agency roles; bit positions of the on-chain role mask (contracts/LedgerTypes.sol)."""

    CUSTOMS_AUTHORITY = 0
    INSPECTION_AGENCY = 1
    PARTNER_CUSTOMS = 2
    RISK_ORACLE = 3
    AUDITOR = 4
    TRADER_REGISTRAR = 5


class DecisionKind(IntEnum):
    """Customs decisions (contracts/LedgerTypes.sol)."""

    RELEASE = 0
    HOLD = 1
    REJECT = 2
    SEIZE = 3


class AgencySpec(BaseModel):
    """One agency to register."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agency_id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$")
    name: str = Field(min_length=1, max_length=256)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    roles: tuple[Role, ...] = Field(min_length=1)
    signers: int = Field(default=1, ge=1, le=8, description="number of signer keys to create")
    ipfs_endpoint: str = Field(default="", max_length=256)

    @property
    def role_mask(self) -> int:
        """The on-chain role bit mask."""
        mask = 0
        for role in self.roles:
            mask |= 1 << int(role)
        return mask

    def signer_label(self, n: int) -> str:
        """Keystore label of signer ``n`` (0-based)."""
        return f"{self.agency_id.lower()}-signer-{n}"


class TraderSpec(BaseModel):
    """One trader account to register."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    registrar: str
    aeo: bool = False


class ConsortiumSpec(BaseModel):
    """A whole consortium to bootstrap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agencies: tuple[AgencySpec, ...] = Field(min_length=1)
    traders: tuple[TraderSpec, ...] = ()
    governors: int = Field(default=3, ge=2, le=32)
    threshold: int = Field(default=2, ge=2)
    proposal_lifetime: int = Field(default=7 * 24 * 3600, ge=3600, le=90 * 24 * 3600)
    dual_control: dict[DecisionKind, int] = Field(default_factory=dict)

    @field_validator("threshold")
    @classmethod
    def _threshold_not_above_governors(cls, value: int, info: object) -> int:
        governors = getattr(info, "data", {}).get("governors", 3)
        if value > governors:
            raise ValueError(f"threshold {value} exceeds the {governors} governors")
        return value

    def agency(self, agency_id: str) -> AgencySpec:
        """The agency spec with ``agency_id``."""
        for spec in self.agencies:
            if spec.agency_id == agency_id:
                return spec
        raise KeyError(agency_id)


def default_consortium() -> ConsortiumSpec:
    """The embedded demo consortium."""
    return ConsortiumSpec(
        agencies=(
            AgencySpec(
                agency_id="CN-TJ-CUSTOMS",
                name="Tianjin Customs District",
                country="CN",
                roles=(Role.CUSTOMS_AUTHORITY, Role.TRADER_REGISTRAR),
                signers=2,
            ),
            AgencySpec(
                agency_id="NL-RTM-CUSTOMS",
                name="Rotterdam Customs",
                country="NL",
                roles=(Role.CUSTOMS_AUTHORITY, Role.PARTNER_CUSTOMS, Role.TRADER_REGISTRAR),
                signers=2,
            ),
            AgencySpec(
                agency_id="CN-TJ-CIQ-LAB",
                name="Tianjin Inspection and Quarantine Laboratory",
                country="CN",
                roles=(Role.INSPECTION_AGENCY,),
            ),
            AgencySpec(
                agency_id="NL-NVWA",
                name="Netherlands Food and Consumer Product Safety Authority",
                country="NL",
                roles=(Role.INSPECTION_AGENCY,),
            ),
            AgencySpec(
                agency_id="CONSORTIUM-RISK",
                name="Consortium Risk Selectivity Oracle",
                country="NL",
                roles=(Role.RISK_ORACLE,),
            ),
            AgencySpec(
                agency_id="CONSORTIUM-AUDIT", name="Consortium Audit Office", country="BE", roles=(Role.AUDITOR,)
            ),
        ),
        traders=(
            TraderSpec(label="trader-tj-electronics", registrar="CN-TJ-CUSTOMS", aeo=True),
            TraderSpec(label="trader-tj-foods", registrar="CN-TJ-CUSTOMS"),
            TraderSpec(label="trader-rtm-importer", registrar="NL-RTM-CUSTOMS", aeo=True),
        ),
        governors=3,
        threshold=2,
        dual_control={DecisionKind.SEIZE: 2},
    )
