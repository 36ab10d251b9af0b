"""What several ``ledger`` command groups need: the settings and the deployment record, as typed errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ledger_api.errors import ConfigurationError

if TYPE_CHECKING:
    from ledger_api.chain.deploy import Deployment
    from ledger_api.config import Settings

__all__ = ["ProgressLine", "load_deployment", "load_settings"]


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


class ProgressLine:
    """One progress line redrawn on ``stream`` (at most every 0.2 s): done / total, rate, ETA; without a
    total (``total=None``) the count and rate only. ``stream=None`` shows nothing."""

    def __init__(self, stream: IO[str] | None, *, total: int | None, unit: str) -> None:
        self.stream, self.total, self.unit = stream, total, unit
        self.started = self.shown = time.monotonic()

    def update(self, done: int, *, final: bool = False, extra: str = "") -> None:
        """Show ``done`` (and ``extra`` text); ``final`` ends the line."""
        if self.stream is None:
            return
        now = time.monotonic()
        if not final and now - self.shown < 0.2:
            return
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            width = 30
            filled = min(width, int(width * done / self.total))
            eta = (self.total - done) / rate if rate > 0 else 0.0
            bar = "#" * filled + "." * (width - filled)
            text = f"[{bar}] {done:,}/{self.total:,} {self.unit} {rate:,.0f}/s ETA {eta:,.0f} s"
        else:
            text = f"{done:,} {self.unit} {rate:,.0f}/s"
        self.stream.write(f"\r{text} {extra} ")
        if final:
            self.stream.write("\n")
        self.stream.flush()
