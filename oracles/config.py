"""Oracle settings: ``LEDGER_ORACLE_*`` environment variables, validated.

The ledger's own :class:`ledger_api.config.Settings` (``LEDGER_*``: node, keystore, var_dir,
content store) is read alongside; these add what only the oracles need. Per-oracle knobs live
here too, so one environment configures an agency's whole oracle set.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OracleSettings"]


class OracleSettings(BaseSettings):
    """Settings common to every oracle, plus each oracle's own (prefixed by its name)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_ORACLE_", frozen=True, extra="forbid")

    # ---- common
    agency: str = Field(default="", max_length=32, description="agency the oracle acts for; empty = its default")
    signer: str = Field(default="", max_length=64, description="keystore label to sign with; empty = agency signer 0")
    interval: float = Field(default=5.0, gt=0, le=3600, description="seconds between polls when idle")
    backoff_max: float = Field(default=60.0, gt=0, le=3600, description="cap of the exponential backoff (s)")
    health_host: str = Field(default="127.0.0.1", max_length=64)
    health_port: int = Field(default=0, ge=0, le=65535, description="HTTP health endpoint; 0 = none")
    state_dir: Path | None = Field(default=None, description="cursors and journals; default <var_dir>/oracles")
    ipfs_nodes: dict[str, str] = Field(
        default_factory=dict, description="agency id -> Kubo RPC address of that agency's IPFS node (JSON)"
    )

    # ---- integrity watch
    integrity_recheck: float = Field(default=300.0, gt=0, description="seconds between full re-checks")
    integrity_missing_grace: float = Field(
        default=3600.0, ge=0, description="seconds before content its anchoring agency's node never held is MISSING"
    )

    # ---- replication
    replicas: int = Field(default=2, ge=1, le=32, description="minimum agency IPFS nodes pinning each CID")

    # ---- risk selectivity
    rules: Path | None = Field(default=None, description="rule set file (JSON); default: built-in")

    # ---- partner bridge
    feed_dir: Path | None = Field(default=None, description="directory drop of signed items; default under state")
    feed_host: str = Field(default="127.0.0.1", max_length=64, description="interface the partner feed listens on")
    feed_port: int = Field(default=0, ge=0, le=65535, description="HTTP port partners push to; 0 = none")
    feed_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024, description="largest feed item")

    # ---- checkpoint witness
    checkpoint_every: int = Field(default=100, ge=1, le=1_000_000, description="blocks between checkpoints")
