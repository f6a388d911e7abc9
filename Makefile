# Postbox — every set-up step lives here; `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DIST := postbox/webclient/static/dist
JS_SOURCES := $(shell find postbox/webclient/static/js -name '*.js' 2>/dev/null) postbox/webclient/build.mjs

export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install run test lint typecheck pytest jstest bench-smoke bench vectors clean

help:
	@echo "make run    - install everything and start the server (SQLite, ./var)"
	@echo "make test   - install everything and run every check"
	@echo "make bench  - full benchmarks (one JSON line each)"
	@echo "make vectors - regenerate tests/vectors/*.json"

## install: idempotent; each step reruns only when its inputs changed
install: $(VENV)/.installed node_modules/.installed $(DIST)/.built

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import postbox, nacl, aiohttp, pytest, hypothesis, xdist"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(DIST)/.built: $(JS_SOURCES) node_modules/.installed
	node postbox/webclient/build.mjs
	touch $@

run: install
	$(BIN)/postbox serve

lint: install
	$(BIN)/ruff check postbox tests bench tools
	$(BIN)/ruff format --check postbox tests bench tools

typecheck: install
	$(BIN)/mypy

# two workers (the machines have two cores), whole files per worker (the fuzz and conformance
# modules share state between their tests); tests use their own folders, databases and ports
pytest: install
	$(BIN)/pytest -q -n 2 --dist loadfile

jstest: install
	node --test tests/js/

bench-smoke: install
	$(BIN)/python bench/crypto.py --smoke
	$(BIN)/python bench/merkle.py --smoke
	$(BIN)/python bench/login.py --smoke
	$(BIN)/python bench/keys.py --smoke
	$(BIN)/python bench/attachments.py --smoke
	$(BIN)/python bench/messages.py --smoke

test: lint typecheck pytest jstest bench-smoke

bench: install
	$(BIN)/python bench/crypto.py
	$(BIN)/python bench/merkle.py
	$(BIN)/python bench/login.py
	$(BIN)/python bench/keys.py
	$(BIN)/python bench/attachments.py
	$(BIN)/python bench/messages.py

vectors: install
	$(BIN)/python tests/vectors/generate.py

clean:
	rm -rf $(VENV) node_modules $(DIST) .mypy_cache .pytest_cache .ruff_cache .hypothesis
