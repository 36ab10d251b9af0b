"""Install the solc-js wrapper where py-solc-x and brownie look for compilers.

py-solc-x (and so brownie) look for ``solc-v<version>`` in ``$SOLCX_BINARY_PATH`` or ``~/.solcx``.
The installed copy cannot find the npm module relative to itself, so this bakes in the absolute
path of this checkout's ``node_modules/solc``. Run by ``make dev``; idempotent.

Usage: python scripts/toolchain/install_solc.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "scripts" / "toolchain" / "solc.js"
PLACEHOLDER = "__LEDGER_SOLC_JS__"


def install() -> Path:
    """Write the wrapper as ``solc-v<version>`` into the py-solc-x install folder; return its path."""
    module = REPO / "node_modules" / "solc"
    package = module / "package.json"
    if not package.is_file():
        raise SystemExit("install_solc: node_modules/solc is missing; run `npm ci` first")
    version = json.loads(package.read_text())["version"]
    folder = Path(os.environ.get("SOLCX_BINARY_PATH") or Path.home() / ".solcx")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"solc-v{version}"
    source = WRAPPER.read_text().replace(PLACEHOLDER, str(module), 1)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(source)
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


if __name__ == "__main__":
    print(install(), file=sys.stdout)
