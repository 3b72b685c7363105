# pushbench: `make bench` and `make test` are all a newcomer needs.
# Both create .venv from requirements.lock (every package pinned) on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= quick
export PYTHONHASHSEED := 0

.PHONY: help venv test lint typecheck unit bench bench-codec clean

help:
	@echo "make bench        codec benchmark (+ the default scenario as later issues land)"
	@echo "make bench-codec  the WebSocket codec benchmark alone"
	@echo "make test         lint (ruff), type check (mypy) and the test suite (pytest)"
	@echo "make venv         create $(VENV) from requirements.lock"

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q

test: lint typecheck unit

bench-codec: venv
	$(VENV)/bin/pushbench bench-codec

bench: bench-codec

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
