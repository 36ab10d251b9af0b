"""What several ``ledger`` command groups need: the settings and the deployment record, as typed errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ledger_api.errors import ConfigurationError

if TYPE_CHECKING:
    from ledger_api.chain.deploy import Deployment
    from ledger_api.config import Settings

__all__ = ["load_deployment", "load_settings"]


def load_settings() -> Settings:
    """The settings from the environment (``LEDGER_*``); an invalid value is one ConfigurationError line."""
    from ledger_api.config import Settings

    try:
        return Settings()
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigurationError(str(exc).splitlines()[0] if str(exc) else "invalid settings") from exc


def load_deployment(settings: Settings, path: Path | None = None) -> Deployment:
    """The deployment record at ``path`` (default ``<var_dir>/deployment.json``); a missing one is a
    ConfigurationError that says how to get one."""
    from ledger_api.chain.deploy import Deployment

    record = path or settings.var_dir / "deployment.json"
    if not record.exists():
        raise ConfigurationError(f"no deployment record at {record} (run `ledger up` or pass --deployment)")
    return Deployment.load(record)
