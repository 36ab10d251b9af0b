# Customs document-provenance ledger — developer entry points.
#   make run    set everything up, then `ledger run`: anvil, deploy + bootstrap once, API + oracles, until Ctrl-C
#   make demo   the demo scenario against a running `make run` (`ledger demo`)
#   make test   set everything up and run every test suite (contracts under brownie, then Python)
# Everything is installed from PyPI / npm only; targets are idempotent (stamp files).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BVENV := .venv-brownie
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: dev run demo test test-contracts test-python artifacts artifacts-check gas lint bench clean stop ipfs-tools browser-tools

dev: node_modules/.installed $(VENV)/.installed $(BVENV)/.installed ipfs-tools browser-tools
	@$(VENV)/bin/python scripts/toolchain/install_solc.py >/dev/null
	@scripts/toolchain/brownie_networks.sh

# `npm install` (not `npm ci`): npm 11 writes only this platform's optional anvil binary into the
# lockfile and `npm ci` then refuses it; `npm install` installs exactly the locked versions.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@

$(BVENV)/.installed: scripts/toolchain/brownie-requirements.txt
	test -x $(BVENV)/bin/python || $(PYTHON) -m venv $(BVENV)
	$(BVENV)/bin/pip install --quiet -r scripts/toolchain/brownie-requirements.txt
	@touch $@

# js-ipfs daemons for the integration tests (scripts/ipfs has its own package.json).
ipfs-tools:
	@if [ -x scripts/ipfs/setup.sh ]; then scripts/ipfs/setup.sh; fi

# Debian's chromium for the browser tests (tests/e2e drive it with Playwright; Playwright's own browser
# download is never used and fails here). Installed only when /usr/bin/chromium is missing; the e2e
# tests fail, not skip, without it.
browser-tools:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; }

run: dev
	$(VENV)/bin/ledger run --host 127.0.0.1 --port $(or $(PORT),8000) $(if $(ORACLE_PORTS),--oracle-ports $(ORACLE_PORTS))

demo:
	$(VENV)/bin/ledger demo

stop:
	$(VENV)/bin/ledger node stop

test: dev
	scripts/run_tests.sh

test-contracts: dev
	scripts/run_tests.sh contracts

test-python: dev
	scripts/run_tests.sh python

artifacts: dev
	$(VENV)/bin/python scripts/build_artifacts.py

artifacts-check: dev
	$(VENV)/bin/python scripts/build_artifacts.py --check

gas: dev
	$(VENV)/bin/python scripts/gas_table.py

lint: dev
	scripts/run_tests.sh lint

# Benchmarks: each rewrites its section of BENCHMARKS.md (QUICK=1 for short runs). The API benchmark
# drives the server with `wrk` (Debian package) when it is there; it is installed here if apt can.
bench: dev
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)) || echo "bench: wrk not installed; the wrk rows are skipped"; }
	$(VENV)/bin/python bench/run_all.py $(if $(QUICK),--quick)

clean:
	rm -rf build reports .pytest_cache .hypothesis
