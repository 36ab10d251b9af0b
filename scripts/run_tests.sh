#!/usr/bin/env bash
# Run the checks: lint (ruff, mypy strict), contracts (brownie, against its own anvil), then Python.
# Usage: scripts/run_tests.sh [lint|contracts|python|all]   (default: all)
# Exit status: non-zero if any suite fails. pytest's exit 5 ("no tests collected") is a failure
# here: a suite that silently runs nothing must not pass.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
which="${1:-all}"
status=0

check() {  # check NAME EXIT_CODE
  local name="$1" rc="$2"
  if [ "$rc" -eq 5 ]; then
    echo "run_tests: $name collected no tests — treating as a failure" >&2
    status=1
  elif [ "$rc" -ne 0 ]; then
    echo "run_tests: $name failed (exit $rc)" >&2
    status=1
  fi
}

if [ "$which" = all ] || [ "$which" = lint ]; then
  .venv/bin/ruff check ledger_api oracles scripts tests bench
  check "ruff" $?
  .venv/bin/mypy
  check "mypy (strict)" $?
fi
if [ "$which" = all ] || [ "$which" = contracts ]; then
  .venv-brownie/bin/brownie test tests/contracts
  check "contract tests (brownie)" $?
fi
if [ "$which" = all ] || [ "$which" = python ]; then
  .venv/bin/python -m pytest
  check "python tests" $?
fi
exit $status
