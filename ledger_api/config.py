"""Settings: one validated object, read from ``LEDGER_*`` environment variables.

There are no secret defaults: the keystore password comes from ``LEDGER_KEYSTORE_PASSWORD``; only
the embedded development default (``LEDGER_ENVIRONMENT=development``) may generate one and keep it
in ``<var_dir>/keys/.password`` (mode 0600).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Runtime settings of the ledger (API, CLI and oracles)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="forbid")

    environment: Literal["development", "production"] = "development"
    var_dir: Path = Field(default=Path("var"), description="state of the embedded default")
    rpc_url: str = Field(default="", description="EVM JSON-RPC endpoint; empty = embedded anvil")
    anvil_port: int = Field(default=8545, ge=1024, le=65535)
    anvil_binary: Path | None = Field(default=None, description="anvil executable; default node_modules/.bin/anvil")
    confirmations: int = Field(default=0, ge=0, le=64)
    keystore_password: SecretStr | None = None
    ipfs_api: str = Field(default="", description="IPFS (Kubo RPC) address; empty = embedded store under var_dir")
    signer_labels: tuple[str, ...] | None = Field(
        default=None, description="keystore labels this service signs with; default every key of the deployment"
    )
    rate_limit_enabled: bool = Field(default=True, description="per-caller and per-address request budgets")
    rate_limit_read_rate: float = Field(default=20.0, gt=0, description="signed reads per second per caller")
    rate_limit_read_burst: int = Field(default=100, ge=1)
    rate_limit_write_rate: float = Field(default=5.0, gt=0, description="signed writes per second per caller")
    rate_limit_write_burst: int = Field(default=30, ge=1)
    rate_limit_failure_rate: float = Field(default=1.0, gt=0, description="failed authentications/s per address")
    rate_limit_failure_burst: int = Field(default=30, ge=1)
    metrics_token: SecretStr | None = Field(default=None, description="bearer token for GET /metrics; none = loopback")
    audit_report: Path | None = Field(
        default=None, description="replay report served to auditors (GET /v1/audit/report); default "
        "<var_dir>/audit/report.json"
    )  # fmt: skip

    @model_validator(mode="after")
    def _no_embedded_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            if not self.rpc_url:
                raise ValueError("LEDGER_RPC_URL is required in production (no embedded anvil)")
            if self.keystore_password is None or len(self.keystore_password.get_secret_value()) < 12:
                raise ValueError("LEDGER_KEYSTORE_PASSWORD (>= 12 characters) is required in production")
        return self

    @property
    def embedded(self) -> bool:
        """True when the ledger runs its own anvil under ``var_dir``."""
        return not self.rpc_url

    @property
    def audit_report_path(self) -> Path:
        """Where the latest ``ledger audit replay --report`` JSON is read from (``audit_report`` or the default)."""
        return self.audit_report or self.var_dir / "audit" / "report.json"

    @property
    def effective_rpc_url(self) -> str:
        """The endpoint to talk to (the embedded anvil's when ``rpc_url`` is empty)."""
        return self.rpc_url or f"http://127.0.0.1:{self.anvil_port}"
