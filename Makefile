# pushbench: `make bench` and `make test` are all a newcomer needs.
# Both create .venv from requirements.lock (every package pinned) on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= quick
export PYTHONHASHSEED := 0

.PHONY: help venv system-deps test lint typecheck unit bench bench-codec bench-codec-quick bench-scenario report clean

# Debian packages that tests and scenarios start for real: Redis for the scale-out hub,
# Chromium as the browser client and the report check (driven headless through Playwright).
# Each is binary:package. Only the packages of missing binaries are installed (when we are
# root), so a machine whose node and npm come from elsewhere (NodeSource's nodejs conflicts
# with Debian's npm) is left alone; otherwise the command to run is printed.
SYSTEM_DEPS := redis-server:redis-server chromium:chromium openssl:openssl ip:iproute2 \
	unshare:util-linux nginx:nginx caddy:caddy haproxy:haproxy nats-server:nats-server
# issue 12 item 7: Node for the reference server servers/node (stack node-ws), its
# package ws installed from servers/node/package-lock.json by `npm ci`.
SYSTEM_DEPS += node:nodejs npm:npm
SYSTEM_PACKAGES := $(foreach d,$(SYSTEM_DEPS),$(word 2,$(subst :, ,$(d))))

help:
	@echo "make bench        quick codec benchmark, then scenarios/\$$SCENARIO.toml (default quick)"
	@echo "make bench-scenario SCENARIO=smoke   one scenario alone"
	@echo "make bench-codec  the full WebSocket codec benchmark alone (~3 min)"
	@echo "make report       re-render results/latest/report.html from stored data"
	@echo "make test         lint (ruff), type check (mypy) and the test suite (pytest)"
	@echo "make venv         create $(VENV) from requirements.lock"
	@echo "make system-deps  install the Debian packages real-part tests use ($(SYSTEM_PACKAGES))"

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

system-deps:
	@missing=""; packages=""; for d in $(SYSTEM_DEPS); do \
	  command -v $${d%%:*} >/dev/null 2>&1 || { missing="$$missing $${d%%:*}"; packages="$$packages $${d#*:}"; }; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$packages >/dev/null; \
	  else \
	    echo "missing:$$missing — run: sudo apt-get install$$packages  (tests needing them will skip)"; \
	  fi; \
	fi
	@if [ servers/node/node_modules/.package-lock.json -nt servers/node/package-lock.json ]; then \
	  :; \
	elif command -v npm >/dev/null 2>&1; then \
	  (cd servers/node && npm ci --no-audit --no-fund --loglevel=error) || echo "npm ci in servers/node failed: the node-ws stack's cells and tests will skip"; \
	else \
	  echo "npm missing: the node-ws stack's cells and tests will skip"; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# Two workers, a test file each at a time (module fixtures start once): most tests wait
# on servers and sockets, so the suite takes ~half the wall time on 2 cores.
unit: venv
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

test: system-deps lint typecheck unit

bench-codec: venv
	$(VENV)/bin/pushbench bench-codec

bench-codec-quick: venv
	$(VENV)/bin/pushbench bench-codec --quick

# The default scenario's re-measures stop where they would carry its run past 560 s, so the
# codec pass, the scenario and the report keep to 10 minutes on a host that steals time;
# another SCENARIO runs uncapped (BENCH_WITHIN=SECONDS sets a cap for any).
BENCH_WITHIN ?= $(if $(filter quick,$(SCENARIO)),560,)
bench-scenario: venv
	$(VENV)/bin/pushbench run scenarios/$(SCENARIO).toml $(if $(BENCH_WITHIN),--remeasure-within $(BENCH_WITHIN),)

# The codec benchmark's quick pass (~20 s; `make bench-codec` is the full one, ~3 min), then
# the scenario (default quick; `make bench SCENARIO=smoke`): ≤ 10 min on 2 cores in all.
# `pushbench run` ends with its answer: the summary table, the report rendered into the
# run's directory (report.html and report.md), the decision guide's verdicts and the path.
bench: bench-codec-quick bench-scenario

report: venv
	$(VENV)/bin/pushbench report results/latest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
