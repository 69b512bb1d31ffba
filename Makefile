# Set-up is part of every target: a fresh machine needs only python3 (>= 3.10) and make.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check lint types bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: this takes the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job: the offline demo (a tiny model trained and evaluated for each goal, on the CPU, offline).
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 $(VENV)/bin/finetune-advisor demo

## The tests.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check advisor runner knowledge tests bench

types: $(STAMP)
	$(VENV)/bin/mypy

check: lint types test

## Start-up times of the pure commands against bare Python.
bench: $(STAMP)
	$(PY) bench/startup.py

clean:
	rm -rf $(VENV) build *.egg-info
