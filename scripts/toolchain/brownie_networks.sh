#!/usr/bin/env bash
# Point brownie's `development` network at a project-private anvil port so brownie tests never
# collide with the embedded ledger node (127.0.0.1:8545). Idempotent; run by `make dev`.
set -euo pipefail
cd "$(dirname "$0")/../.."
BROWNIE=".venv-brownie/bin/brownie"
PORT="${LEDGER_BROWNIE_PORT:-8555}"
"$BROWNIE" networks modify development port="$PORT" accounts=20 gas_limit=30000000 >/dev/null
echo "brownie development network: anvil on 127.0.0.1:$PORT"
