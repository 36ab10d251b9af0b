"""Regenerate the committed contract artifacts (ABI + bytecode) under ledger_api/chain/artifacts/.

Run with the application environment: ``.venv/bin/python scripts/build_artifacts.py`` (or
``make artifacts``). ``--check`` compiles and exits 1 if the committed files differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ledger_api.chain._solc import compile_artifacts, render_artifact  # noqa: E402

ARTIFACTS = REPO / "ledger_api" / "chain" / "artifacts"


def main() -> int:
    """Compile and write (or with --check, compare) every artifact; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, artifact in compile_artifacts(REPO).items():
        target = ARTIFACTS / f"{name}.json"
        rendered = render_artifact(artifact)
        if args.check:
            if not target.is_file() or target.read_text() != rendered:
                stale.append(name)
        else:
            target.write_text(rendered)
            print(f"wrote {target.relative_to(REPO)}")
    if stale:
        print(f"stale artifacts: {', '.join(stale)} (run `make artifacts`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
