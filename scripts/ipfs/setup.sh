#!/usr/bin/env bash
# Install js-ipfs 0.66.1 (the IPFS daemon the integration tests start) into scripts/ipfs/node_modules.
# Idempotent: does nothing when node_modules already matches package-lock.json.
# Needs Node >= 20 and the npm registry; takes ~3-4 minutes the first time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
stamp=node_modules/.ledger-installed-lock.json
if [[ -x node_modules/.bin/jsipfs && -f $stamp ]] && cmp -s package-lock.json "$stamp"; then
  echo "scripts/ipfs: js-ipfs already installed"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
NODE_OPTIONS="--require=$PWD/polyfill.cjs" node_modules/.bin/jsipfs --version >/dev/null
echo "scripts/ipfs: js-ipfs installed ($(node -p "require('./node_modules/ipfs/package.json').version"))"
