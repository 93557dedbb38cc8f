# repro: run `make help` for the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## Create .venv and install repro with its test extras (editable)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'

test:  ## Run the default test suite (under 10 minutes on 2 CPU cores)
	$(BIN)/python -m pytest -q

smoke:  ## Train the embedded default (digits, AutoLR) end to end
	$(BIN)/repro run

bench:  ## Throughput vs a bare PyTorch loop, AutoLR extra compute, snapshot memory
	$(BIN)/python bench/bench_loop.py

figures:  ## Draw every figure whose runs exist under results/ into plots/
	$(BIN)/repro figures --results results --out plots

.PHONY: help install test smoke bench figures
